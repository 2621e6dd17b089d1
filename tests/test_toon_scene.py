"""Training audio that sounds like microphones: voice changes, the channel, non-speech sounds, the mix."""

import numpy as np
import pytest

from engine.clips.clip import make_clip
from engine.clips.mic import Microphone, VoiceChange, apply_microphone, change_voice
from engine.clips.scene import ClipAudio, clip_audio, loudness, pauses
from engine.clips.sounds import KINDS, make_sound
from engine.clips.voices import Voice, speak
from engine.config import SAMPLE_RATE


@pytest.fixture(scope="module")
def utterance():
    return speak(["Hello moon, a happy baby. Pop."], Voice("flite", "slt"))[0].audio


def _envelope(x: np.ndarray, hop: int = 160) -> np.ndarray:
    n = x.size // hop
    return np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(1))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_sound_kind_is_seeded_full_scale_and_finite(kind):
    a, b, c = make_sound(kind, 1, 2.0), make_sound(kind, 1, 2.0), make_sound(kind, 2, 2.0)
    assert a.shape == (2 * SAMPLE_RATE,) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.isfinite(a).all() and abs(float(np.abs(a).max()) - 1.0) < 1e-6


def test_unknown_sound_kind_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown sound kind"):
        make_sound("kazoo", 0, 1.0)


@pytest.mark.parametrize("change", [VoiceChange(speed=1.25), VoiceChange(speed=0.8, pitch=3.0),
                                    VoiceChange(formant=1.15), VoiceChange(speed=1.1, pitch=-3, formant=0.87)])
def test_voice_change_keeps_timing_scaled_by_speed(utterance, change):
    y = change_voice(utterance, change)
    assert y.size == round(utterance.size / change.speed)
    ex, ey = _envelope(utterance), _envelope(y)
    ex = ex[np.minimum((np.arange(ey.size) * change.speed).astype(int), ex.size - 1)]
    r = [np.corrcoef(ex[max(0, -k):ey.size - max(0, k)], ey[max(0, k):ey.size - max(0, -k)])[0, 1]
         for k in range(-5, 6)]
    assert int(np.argmax(r)) - 5 in (-1, 0, 1)      # within 10 ms after the speed change
    assert max(r) > 0.8


def test_voice_change_pitch_moves_the_fundamental():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    x = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    y = change_voice(x, VoiceChange(pitch=12.0))
    spec = np.abs(np.fft.rfft(y[4000:12000] * np.hanning(8000)))
    assert abs(np.argmax(spec) * SAMPLE_RATE / 8000 - 400) < 15


def test_microphone_keeps_length_and_clips_at_full_scale(utterance):
    loud = utterance * 0.9
    for mic in (Microphone(room_size=0.8, wet=0.4), Microphone(codec="gsm"), Microphone(codec="mp3"),
                Microphone(highpass_hz=250, lowpass_hz=3400, peak_db=6), Microphone(drive_db=12)):
        y = apply_microphone(loud, mic)
        assert y.shape == loud.shape and np.isfinite(y).all(), mic
        assert not np.allclose(y, loud, atol=1e-3), mic
    assert np.abs(apply_microphone(loud, Microphone(drive_db=12))).max() <= 1.0
    assert np.array_equal(apply_microphone(loud, Microphone()), loud.astype(np.float32))


def test_bad_audio_settings_are_one_clear_error():
    with pytest.raises(ValueError, match="unknown data.audio settings"):
        clip_audio({"famlies": {"espeak": 1}})
    with pytest.raises(ValueError, match="families"):
        ClipAudio(families={"sam": 1.0})
    with pytest.raises(ValueError, match="low <= high"):
        ClipAudio(speed=(1.2, 0.8))
    with pytest.raises(ValueError, match="chance"):
        ClipAudio(bed=1.5)
    assert clip_audio({}) is None


def test_mixed_clip_is_deterministic_by_seed_and_cached(tmp_path):
    cfg = ClipAudio(families={"flite": 1.0})
    a = make_clip(11, 25, 3.0, audio=cfg)
    b = make_clip(11, 25, 3.0, audio=cfg, cache_dir=tmp_path)
    c = make_clip(11, 25, 3.0, audio=cfg, cache_dir=tmp_path)
    assert a.audio.tobytes() == b.audio.tobytes() == c.audio.tobytes()
    assert np.array_equal(a.controls, c.controls) and c.voice == a.voice and c.sounds == a.sounds
    assert isinstance(c.voice, Voice) and c.voice.family == "flite"


def test_sounds_without_speech_keep_the_mouth_shut():
    cfg = ClipAudio(families={"espeak": 1.0}, no_speech=1.0, events=1.0, bed=1.0)
    clip = make_clip(5, 25, 3.0, audio=cfg)
    assert clip.phonemes == [] and clip.sounds
    assert clip.controls[:, 0].max() == 0.0
    assert loudness(clip.audio) > 1e-3


def test_events_fill_pauses_at_speech_loudness_with_the_mouth_shut():
    cfg = ClipAudio(families={"flite": 1.0}, events=1.0, bed=0.0, microphone=0.0, event_db=(0.0, 0.0))
    found = 0
    for seed in range(6):
        clip = make_clip(seed, 25, 4.0, audio=cfg)
        quiet = pauses(clip.phonemes, 4.0)
        for kind, a, b, role in clip.sounds:
            inside = any(qa <= a and b <= qb for qa, qb in quiet)
            frames = slice(int(np.ceil(a * 25)) + 3, int(b * 25) - 3)   # away from coarticulation at the edges
            if role != "event" or not inside or frames.stop - frames.start < 2:
                continue
            found += 1
            assert clip.controls[frames, 0].max() < 0.05, (seed, kind)
            assert loudness(clip.audio[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)]) > 1e-4
    assert found >= 3


def test_the_voices_recipe_trains_on_every_family_and_bad_settings_fail_at_load():
    from engine.train.recipe import load_recipe, recipe_from_dict
    cfg = clip_audio(load_recipe("engine/train/configs/toon_voices.yaml").data.audio)
    assert cfg is not None and set(cfg.families) == {"espeak", "flite", "festival"}
    with pytest.raises(ValueError, match="chance"):
        recipe_from_dict({"data": {"audio": {"events": 2}}})

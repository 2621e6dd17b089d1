"""espeak-ng speech through libespeak-ng: bit-exact, with phoneme times from the synthesiser."""

import numpy as np
import pytest

from engine.clips.speech import VoiceSpec, random_voice, resample, synthesize
from engine.config import SAMPLE_RATE

TEXT = "Hello there, how are you today?"


@pytest.fixture(scope="module")
def hello():
    return synthesize([TEXT, "Moon and spoon."], [VoiceSpec(), VoiceSpec("en", "f3", 140, 70)], seed=1)


def test_synthesis_is_bit_exact_for_the_same_request(hello):
    again = synthesize([TEXT, "Moon and spoon."], [VoiceSpec(), VoiceSpec("en", "f3", 140, 70)], seed=1)
    for a, b in zip(hello, again):
        assert a.audio.tobytes() == b.audio.tobytes()
        assert a.phonemes == b.phonemes


def test_audio_is_16k_float32_of_plausible_length(hello):
    u = hello[0]
    assert u.audio.dtype == np.float32 and u.audio.ndim == 1
    assert 1.0 < u.audio.size / SAMPLE_RATE < 4.0
    assert 0.05 < np.abs(u.audio).max() <= 1.0


def test_phoneme_events_are_ordered_and_inside_the_audio(hello):
    for u in hello:
        times = [t for t, _ in u.phonemes]
        assert times == sorted(times)
        assert 0 <= times[0] and times[-1] <= u.audio.size / SAMPLE_RATE + 1e-3
        assert {"h", "l"} <= {p for _, p in hello[0].phonemes}


def test_first_phoneme_onset_matches_audio_onset(hello):
    """The synthesiser's time for /h/ sits where the waveform starts (within 15 ms)."""
    u = hello[0]
    env = np.abs(u.audio) > 0.01
    onset = np.argmax(env) / SAMPLE_RATE
    assert abs(onset - u.phonemes[0][0]) < 0.015


def test_unknown_voice_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="no voice"):
        synthesize(["hi"], [VoiceSpec(voice="xx-nope")])


def test_random_voices_all_exist():
    rng = np.random.default_rng(0)
    voices = [random_voice(rng) for _ in range(6)]
    out = synthesize(["Hi."] * len(voices), voices)
    assert all(u.audio.size > 1000 for u in out)


def test_resample_keeps_a_tone_at_its_frequency():
    t = np.arange(22050) / 22050
    y = resample(np.sin(2 * np.pi * 440 * t), 22050, 16000)
    assert y.size == 16000
    assert np.argmax(np.abs(np.fft.rfft(y))) == 440

"""Clips: deterministic by seed, and mouth targets that follow the synthesiser's phonemes."""

import numpy as np
import pytest

from engine.clips.clip import make_clip
from engine.clips.visemes import visemes_for
from engine.config import SAMPLE_RATE

OPEN_VOWELS = {"a", "A:", "aI", "aU", "A@", "0", "O:"}


@pytest.fixture(scope="module")
def clips():
    return [make_clip(seed, fps=25, seconds=6.0) for seed in (1, 2, 3)]


def test_same_seed_gives_same_audio_bytes_and_controls(clips):
    again = make_clip(1, fps=25, seconds=6.0)
    assert again.audio.tobytes() == clips[0].audio.tobytes()
    assert np.array_equal(again.controls, clips[0].controls)
    assert again.identity == clips[0].identity


def test_different_seeds_give_different_clips(clips):
    assert clips[0].texts != clips[1].texts
    assert not np.array_equal(clips[0].controls, clips[1].controls)


def test_lengths_match_frames_and_samples(clips):
    for c in clips:
        assert c.n_frames == 150
        assert c.audio.size == 150 * SAMPLE_RATE // 25
        assert c.audio.dtype == np.float32


def test_mouth_is_open_in_open_vowels_and_closed_in_silence(clips):
    opened, silent = [], []
    for c in clips:
        centres = (np.arange(c.n_frames) + 0.5) / c.fps
        ph = c.phonemes
        for i, (t, p) in enumerate(ph):
            end = ph[i + 1][0] if i + 1 < len(ph) else c.audio.size / SAMPLE_RATE
            inside = (centres >= t) & (centres < end)
            if p in OPEN_VOWELS and end - t > 0.08:
                opened += list(c.controls[inside, 0])
        speech = [t for t, p in ph if visemes_for(p)[0][0] > 0]
        far = np.array([min(abs(x - s) for s in speech) > 0.25 if speech else True for x in centres])
        silent += list(c.controls[far, 0])
    assert len(opened) >= 10 and np.median(opened) > 0.4
    assert len(silent) >= 10 and np.max(silent) < 0.02


def test_mouth_opening_follows_audio_loudness_at_zero_lag(clips):
    """Targets and audio are aligned: the loudness/opening correlation peaks at lag 0 (+-1 frame)."""
    corr_by_lag = np.zeros(11)
    for c in clips:
        frames = c.audio.reshape(c.n_frames, -1)
        loud = np.log(np.mean(frames**2, axis=1) + 1e-8)
        op = c.controls[:, 0]
        for k, lag in enumerate(range(-5, 6)):
            a, b = (loud[lag:], op[:len(op) - lag]) if lag >= 0 else (loud[:lag], op[-lag:])
            corr_by_lag[k] += np.corrcoef(a, b)[0, 1]
    assert abs(int(np.argmax(corr_by_lag)) - 5) <= 1
    assert corr_by_lag[5] / len(clips) > 0.5


def test_head_is_still_in_long_silence_and_moves_while_speaking(clips):
    moving, still = [], []
    for c in clips:
        centres = (np.arange(c.n_frames) + 0.5) / c.fps
        speech = np.array([t for t, p in c.phonemes if visemes_for(p)[0][0] > 0])
        far = np.array([np.min(np.abs(speech - x)) > 0.7 for x in centres])
        head = np.abs(c.controls[:, 4:7]).max(1)
        still += list(head[far])
        moving += list(head[c.controls[:, 0] > 0.2])
    assert np.mean(moving) > 0.03
    assert len(still) >= 5 and max(still) < 0.02


def test_blinks_happen(clips):
    assert any(c.controls[:, 3].max() > 0.9 for c in clips)


def test_cache_returns_the_same_clip(tmp_path, clips):
    first = make_clip(1, fps=25, seconds=6.0, cache_dir=tmp_path)
    cached = make_clip(1, fps=25, seconds=6.0, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    for c in (first, cached):
        assert c.audio.tobytes() == clips[0].audio.tobytes()
        assert np.array_equal(c.controls, clips[0].controls)
        assert c.phonemes == clips[0].phonemes


def test_clip_frames_render(clips):
    frames = clips[0].render(size=64)
    assert frames.shape == (150, 64, 64, 3)

"""Log-mel features: streaming equals offline, clicks land on the right frame, gain is normalised."""

import numpy as np
import pytest
import torch

from engine.codecs.logmel import LogMelEncoder

SR, FPS = 16000, 25
SPF = SR // FPS


def _speechy(seconds: float, seed: int = 0) -> np.ndarray:
    """Bursts of harmonic tone with noise and silent gaps: enough structure to exercise every path."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    tone = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SR) / k for k in range(1, 8))
    gate = (np.sin(2 * np.pi * 1.3 * t) > 0.1).astype(float)
    return (0.3 * tone * gate + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_features_equal_offline_for_any_chunking(seed):
    enc = LogMelEncoder()
    x = _speechy(3.3, seed)
    offline = enc.encode(x)
    rng = np.random.default_rng(seed)
    enc.reset()
    parts, i = [], 0
    while i < x.size:
        k = int(rng.choice([1, 7, 160, 333, 640, 1000, 4096]))
        parts.append(enc.push(x[i:i + k]))
        i += k
    parts.append(enc.flush())
    streamed = torch.cat(parts)
    assert streamed.shape == offline.shape == (x.size // SPF, enc.dim)
    assert torch.allclose(streamed, offline, atol=1e-6)


def test_push_emits_a_frame_only_once_its_lookahead_has_arrived():
    enc = LogMelEncoder(lookahead_ms=20)
    la = int(0.02 * SR)
    assert enc.push(np.zeros(SPF + la - 1)).shape[0] == 0
    assert enc.push(np.zeros(1)).shape[0] == 1


def test_int16_input_matches_float_input():
    x = _speechy(1.0)
    q = np.round(x * 32767).astype(np.int16)
    enc = LogMelEncoder()
    assert torch.allclose(enc.encode(q), enc.encode(q.astype(np.float64) / 32768.0))


def test_click_lands_on_the_frame_that_contains_it():
    enc = LogMelEncoder(lookahead_ms=0)
    silent = enc.encode(np.zeros(SR))
    for frame in (3, 10, 17):
        x = np.zeros(SR)
        x[frame * SPF + SPF // 2] = 1.0
        changed = np.nonzero(((enc.encode(x) - silent).abs().sum(1) > 1e-6).numpy())[0]
        assert changed[0] == frame


def test_lookahead_is_exactly_as_documented():
    enc = LogMelEncoder(lookahead_ms=20)
    assert enc.lookahead_ms == 20
    silent = enc.encode(np.zeros(SR))
    end = 5 * SPF + SPF  # end of frame 5
    inside = np.zeros(SR)
    inside[end + 320 - 1] = 1.0  # last look-ahead sample of frame 5
    outside = np.zeros(SR)
    outside[end + 320] = 1.0
    assert (enc.encode(inside)[5] - silent[5]).abs().sum() > 1e-6
    assert (enc.encode(outside)[5] - silent[5]).abs().sum() == 0


def test_loudness_is_normalised_after_the_first_word():
    enc = LogMelEncoder()
    x = _speechy(3.0)
    loud, quiet = enc.encode(x), enc.encode(x * 0.05)
    assert (loud[25:] - quiet[25:]).abs().mean() < 0.05
    assert loud.abs().max() < 3


def test_dim_matches_features_and_short_input_gives_no_frames():
    enc = LogMelEncoder(n_mels=20, context_frames=6)
    assert enc.dim == 120 and enc.encode(np.zeros(1000)).shape == (1, 120)
    assert enc.encode(np.zeros(100)).shape == (0, 120)


def test_stereo_input_is_rejected():
    with pytest.raises(ValueError, match="mono"):
        LogMelEncoder().encode(np.zeros((1000, 2)))

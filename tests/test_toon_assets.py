"""The bundled demo assets exist, have the promised format, and match their generator."""

import wave

import numpy as np
from PIL import Image

from avatarcam.data import DEFAULT_AVATAR_PNG, DEMO_VOICE_WAV
from engine.tools.demo_assets import DEFAULT_AVATAR_SEED
from engine.toon import random_identity, render_portrait


def _read_wav(path):
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


def test_demo_voice_is_8_to_12_seconds_of_16k_mono_speech_with_a_pause():
    x = _read_wav(DEMO_VOICE_WAV)
    assert 8.0 <= x.size / 16000 <= 12.0
    rms = np.sqrt(np.mean(x[: x.size // 400 * 400].reshape(-1, 400) ** 2, axis=1))  # 25 ms blocks
    loud = rms > 0.01
    assert loud.mean() > 0.5
    inner = loud[np.argmax(loud): len(loud) - np.argmax(loud[::-1])]
    longest, run = 0, 0
    for is_loud in inner:
        run = 0 if is_loud else run + 1
        longest = max(longest, run)
    assert longest * 0.025 >= 0.5  # a pause of at least half a second between sentences


def test_default_avatar_matches_the_generator():
    img = np.asarray(Image.open(DEFAULT_AVATAR_PNG).convert("RGB"))
    assert img.shape == (512, 512, 3)
    assert np.array_equal(img, render_portrait(random_identity(DEFAULT_AVATAR_SEED), 512))

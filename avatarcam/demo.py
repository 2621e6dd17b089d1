"""The bundled demo inputs, shaped for measurements: the demo voice at any length, the toon portrait.

Why a module: the benchmarks and the CPU-variant tuner measure on the same inputs, and neither
should import the other to get them.
"""
from __future__ import annotations

import numpy as np

from engine.config import SAMPLE_RATE


def demo_voice(seconds: float) -> np.ndarray:
    """The bundled demo voice, looped to the length asked for (16 kHz mono float32)."""
    from .audio import decode_audio_file
    from .data import DEMO_VOICE_WAV
    pcm = decode_audio_file(DEMO_VOICE_WAV)
    reps = int(np.ceil(seconds * SAMPLE_RATE / len(pcm)))
    return np.tile(pcm, reps)[: int(seconds * SAMPLE_RATE)]


def demo_identity():
    """Cartoon identity 0: the benchmarks' avatar (drawn by its rig, as a library cartoon is)."""
    from engine.toon import random_identity
    return random_identity(0)


def demo_portrait(size: int = 512) -> np.ndarray:
    """Cartoon identity 0 at `size` pixels (the library stores avatars at 512)."""
    from engine.toon import render_portrait
    return render_portrait(demo_identity(), size)

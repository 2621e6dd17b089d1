"""A noise gate for what the avatar hears: blocks quieter than a threshold become silence.

Why: keyboard clicks and fans are quiet but not silent, and the model opens the mouth for any
sound. A level threshold costs one RMS per block (unlike the voice-activity gate, `audio.vad`,
which runs a network and can sit behind it). A short hold keeps the quiet ends of words, and only
the avatar's copy of the audio is gated: the delayed mic the meeting hears stays untouched.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.config import SAMPLE_RATE

from .level import level_dbfs

GATE_RANGE_DB = (-90.0, 0.0)   # the level meter's scale


@dataclass
class NoiseGate:
    """Open while the level is at or above `threshold_db`, and for `hold_s` after it last was."""

    threshold_db: float
    hold_s: float = 0.25
    _open_for: float = 0.0

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """The block itself while the gate is open, else zeros of the same shape."""
        seconds = len(block) / SAMPLE_RATE
        if level_dbfs(block) >= self.threshold_db:
            self._open_for = self.hold_s
            return block
        if self._open_for > 0:
            self._open_for -= seconds
            return block
        return np.zeros_like(block)

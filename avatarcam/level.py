"""A microphone's level in dBFS, for a level meter: the UI shows it without opening devices itself."""
from __future__ import annotations

import math

import numpy as np

from .errors import DeviceError


def level_dbfs(block: np.ndarray) -> float:
    """RMS level of a float block in dBFS, floored at -90 (silence)."""
    if block.size == 0:
        return -90.0
    rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
    return max(-90.0, 20.0 * math.log10(rms + 1e-12))


class MicLevels:
    """`with MicLevels(device) as mic: mic.read()` gives the level of each next block (None: none yet)."""

    def __init__(self, device: int | str | None, block_ms: int = 50):
        from .audio import MicSource
        self.source = MicSource(device, block_ms=block_ms)
        self.device = device

    def open(self) -> "MicLevels":
        """DeviceError (with the fix) when the microphone cannot be opened, whatever PortAudio says."""
        from .errors import AvatarCamError
        try:
            self.source.open()
        except AvatarCamError:
            raise
        except Exception as exc:  # PortAudio can fail in many ways
            raise DeviceError(f"the microphone could not be opened: {exc}") from exc
        return self

    @property
    def name(self) -> str:
        info = self.source.device_info
        return info.name if info else str(self.device)

    def read(self, timeout: float = 0.2) -> float | None:
        block = self.source.read(timeout=timeout)
        return None if block is None else level_dbfs(block)

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> "MicLevels":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

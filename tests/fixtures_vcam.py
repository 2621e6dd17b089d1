"""A pyvirtualcam backend that records frames instead of writing to a camera device.

This machine (and CI) cannot have a virtual camera device: no v4l2loopback kernel module can load
here, and the OBS camera exists only on Windows/macOS. So tests stop at that boundary: this backend is
registered through pyvirtualcam's public ``register_backend`` and the real ``pyvirtualcam.Camera``
runs in front of it (frame shape/format checks, fourcc negotiation, device naming).
"""
from __future__ import annotations

import numpy as np
import pytest


class RecordingBackend:
    """Stores every frame it receives with the pixel format pyvirtualcam negotiated."""

    native: str | None = None  # the native pixel format to report ('NV12' like OBS on Windows, ...)
    instances: list["RecordingBackend"] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw):
        from pyvirtualcam.util import decode_fourcc
        from pyvirtualcam import PixelFormat

        self.width, self.height, self.fps = width, height, fps
        self.fmt = PixelFormat(decode_fourcc(fourcc)).name
        self._device = device or "/dev/video-recording"
        self.frames: list[np.ndarray] = []
        self.closed = False
        type(self).instances.append(self)

    def close(self) -> None:
        self.closed = True

    def send(self, frame: np.ndarray) -> None:
        self.frames.append(frame.copy())

    def device(self) -> str:
        return self._device

    def native_fourcc(self):
        from pyvirtualcam.util import encode_fourcc
        from pyvirtualcam import PixelFormat

        return encode_fourcc(PixelFormat[self.native].value) if self.native else None


@pytest.fixture
def recording_camera():
    """Registers the ``recording`` pyvirtualcam backend; yields the class (set ``.native`` to choose)."""
    pyvirtualcam = pytest.importorskip("pyvirtualcam")

    class Backend(RecordingBackend):
        native = None
        instances = []

    pyvirtualcam.register_backend("recording", Backend)
    try:
        yield Backend
    finally:
        from pyvirtualcam.camera import BACKENDS
        BACKENDS.pop("recording", None)

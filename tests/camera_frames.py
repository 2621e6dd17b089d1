"""Decode what a virtual camera received back to RGB: the tests' view of a camera consumer."""
from __future__ import annotations

import numpy as np

from avatarcam.frames import _u8


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inverse of the BT.601 limited-range conversion (full-resolution planes); for checks and previews."""
    c, d, e = y.astype(np.float32) - 16, u.astype(np.float32) - 128, v.astype(np.float32) - 128
    r = 1.164383 * c + 1.596027 * e
    g = 1.164383 * c - 0.391762 * d - 0.812968 * e
    b = 1.164383 * c + 2.017232 * d
    return _u8(np.stack([r, g, b], axis=-1))


def native_to_rgb(data: np.ndarray, fmt: str, width: int, height: int) -> np.ndarray:
    """Decode a frame in pyvirtualcam format ``fmt`` back to RGB (what a camera consumer would see)."""
    data = np.asarray(data, np.uint8).reshape(-1)
    w, h = width, height
    if fmt == "RGB":
        return data.reshape(h, w, 3)
    if fmt == "BGR":
        return data.reshape(h, w, 3)[..., ::-1]
    if fmt == "RGBA":
        return data.reshape(h, w, 4)[..., :3]
    if fmt == "GRAY":
        return np.repeat(data.reshape(h, w, 1), 3, axis=2)
    if fmt in ("I420", "NV12"):
        y = data[:w * h].reshape(h, w)
        if fmt == "I420":
            u = data[w * h:w * h * 5 // 4].reshape(h // 2, w // 2)
            v = data[w * h * 5 // 4:].reshape(h // 2, w // 2)
        else:
            uv = data[w * h:].reshape(h // 2, w // 2, 2)
            u, v = uv[..., 0], uv[..., 1]
        up = lambda c: np.repeat(np.repeat(c, 2, 0), 2, 1)  # noqa: E731
        return yuv_to_rgb(y, up(u), up(v))
    if fmt in ("YUYV", "UYVY"):
        q = data.reshape(h, w // 2, 4)
        y0, u, y1, v = (q[..., 0], q[..., 1], q[..., 2], q[..., 3]) if fmt == "YUYV" else \
            (q[..., 1], q[..., 0], q[..., 3], q[..., 2])
        y = np.stack([y0, y1], axis=-1).reshape(h, w)
        return yuv_to_rgb(y, np.repeat(u, 2, 1), np.repeat(v, 2, 1))
    raise ValueError(f"unsupported pixel format {fmt!r}")

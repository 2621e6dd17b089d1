"""Frame geometry and pixel formats for the sinks: letterboxing and RGB -> YUV/BGR conversion.

Virtual cameras have fixed sizes (macOS: 1280x720 only) and native pixel formats (OBS on Windows:
NV12, macOS: UYVY, v4l2loopback: I420/YUYV). Converting here, once, in numpy avoids a second
conversion inside the backend and keeps the colour maths (BT.601 limited range, as libyuv) in one place.
"""
from __future__ import annotations

import numpy as np


def fit_letterbox(frame: np.ndarray, width: int, height: int, pad: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Scale ``frame`` (HxWx3 uint8) to fit ``width`` x ``height`` keeping its aspect; pad with ``pad``."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    scale = min(width / w, height / h)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    from PIL import Image

    scaled = np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize((nw, nh), Image.BILINEAR))
    out = np.empty((height, width, 3), np.uint8)
    out[:] = pad
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = scaled
    return out


def _yuv_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-resolution Y, U, V (BT.601 limited range) as float32."""
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + 0.256788 * r + 0.504129 * g + 0.097906 * b
    u = 128 - 0.148223 * r - 0.290993 * g + 0.439216 * b
    v = 128 + 0.439216 * r - 0.367788 * g - 0.071427 * b
    return y, u, v


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _sub2x2(c: np.ndarray) -> np.ndarray:
    h, w = c.shape
    c = np.pad(c, ((0, h % 2), (0, w % 2)), mode="edge")
    return 0.25 * (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2])


def _sub2x1(c: np.ndarray) -> np.ndarray:
    return 0.5 * (c[:, 0::2] + c[:, 1::2])


def convert_rgb(frame: np.ndarray, fmt: str) -> np.ndarray:
    """RGB (HxWx3 uint8) to pyvirtualcam's ``PixelFormat`` name ``fmt``, in the shape pyvirtualcam checks."""
    if fmt == "RGB":
        return frame
    if fmt == "BGR":
        return np.ascontiguousarray(frame[..., ::-1])
    if fmt == "RGBA":
        h, w = frame.shape[:2]
        return np.concatenate([frame, np.full((h, w, 1), 255, np.uint8)], axis=2)
    if fmt == "GRAY":  # libyuv J400: full-range luma
        f = frame.astype(np.float32)
        return _u8(0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2])
    h, w = frame.shape[:2]
    if w % 2 or h % 2:
        raise ValueError(f"{fmt} needs an even width and height, got {w}x{h}")
    y, u, v = _yuv_planes(frame)
    if fmt in ("I420", "NV12"):
        us, vs = _u8(_sub2x2(u)), _u8(_sub2x2(v))
        if fmt == "I420":
            return np.concatenate([_u8(y).reshape(-1), us.reshape(-1), vs.reshape(-1)])
        return np.concatenate([_u8(y).reshape(-1), np.stack([us, vs], axis=-1).reshape(-1)])
    if fmt in ("YUYV", "UYVY"):
        y8, us, vs = _u8(y), _u8(_sub2x1(u)), _u8(_sub2x1(v))
        y0, y1 = y8[:, 0::2], y8[:, 1::2]
        order = (y0, us, y1, vs) if fmt == "YUYV" else (us, y0, vs, y1)
        return np.stack(order, axis=-1).reshape(-1)
    raise ValueError(f"unsupported pixel format {fmt!r}")

"""Draw one cartoon frame of an identity under per-frame face controls.

Why Pillow polygons at 2x then a 2x2 box reduction: the drawing runs in C, every shape gets
anti-aliased edges for free, and a 256x256 frame costs a few milliseconds, so the renderer can
feed autoencoder and diffusion training on the fly. Shapes live in face-local coordinates
(fractions of the image); head yaw / nod shift each layer by its depth (parallax) and roll
rotates everything about the neck, so the head moves as one rigid-ish cartoon.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image, ImageDraw

from engine.toon.identity import Color, Identity

logger = logging.getLogger(__name__)

_SS = 2  # supersampling factor
_HEAD_CX, _HEAD_CY = 0.5, 0.46


@dataclass(frozen=True)
class FaceControls:
    """Per-frame animation state; every field has a neutral default (closed mouth, eyes open).

    mouth_open: jaw drop 0 (closed) .. 1 (wide open). mouth_width: 0 pursed .. 0.5 neutral .. 1
    spread ("ee"). mouth_round: 0 .. 1 rounded lips ("oo"). blink: 0 open .. 1 shut.
    yaw / roll / nod: head pose offsets in -1..1 (about +-12 degrees of apparent turn).
    """

    mouth_open: float = 0.0
    mouth_width: float = 0.5
    mouth_round: float = 0.0
    blink: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    nod: float = 0.0

    def as_array(self) -> np.ndarray:
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float32)

    @classmethod
    def from_array(cls, values: np.ndarray) -> "FaceControls":
        names = [f.name for f in fields(cls)]
        if len(values) != len(names):
            raise ValueError(f"FaceControls.from_array: expected {len(names)} values ({names}), got {len(values)}")
        return cls(**{n: float(v) for n, v in zip(names, values)})


CONTROL_NAMES: tuple[str, ...] = tuple(f.name for f in fields(FaceControls))


def _shade(c: Color, k: float) -> Color:
    return tuple(int(np.clip(v * k, 0, 255)) for v in c)  # type: ignore[return-value]


def _mix(a: Color, b: Color, t: float) -> Color:
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _ellipse(cx: float, cy: float, a: float, b: float, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], axis=1)


_FACE_EXPONENT = {"round": 2.2, "oval": 2.0, "square": 3.6, "heart": 2.3, "long": 2.4}
_FACE_TAPER = {"round": 0.05, "oval": 0.2, "square": 0.1, "heart": 0.45, "long": 0.25}


def _face_outline(ident: Identity, jaw: float, n: int = 64) -> np.ndarray:
    """Superellipse head with a chin taper per face shape; `jaw` stretches the lower half."""
    a, b = ident.face_width, ident.face_height
    if ident.face_shape == "long":
        a *= 0.9
    e = _FACE_EXPONENT[ident.face_shape]
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = a * np.sign(c) * np.abs(c) ** (2 / e)
    y = b * np.sign(s) * np.abs(s) ** (2 / e)
    low = np.clip(y / b, 0, 1)
    x = x * (1 - _FACE_TAPER[ident.face_shape] * low**2)
    y = y + jaw * b * 0.16 * low
    return np.stack([x, y], axis=1)


class _Pose:
    """Maps face-local points (with a depth for parallax) to supersampled pixel coordinates."""

    def __init__(self, ident: Identity, c: FaceControls, size: int):
        self.scale = size * _SS
        self.yaw, self.nod = float(c.yaw), float(c.nod)
        ang = math.radians(12.0 * float(c.roll))
        self.cos, self.sin = math.cos(ang), math.sin(ang)
        self.pivot_y = ident.face_height * 1.15
        self.fw, self.fh = ident.face_width, ident.face_height
        self.dx = _HEAD_CX + 0.02 * self.yaw
        self.dy = _HEAD_CY + 0.015 * self.nod

    def __call__(self, pts: np.ndarray, depth: float = 0.0) -> list[tuple[float, float]]:
        x = pts[:, 0] * (1.0 - 0.08 * abs(self.yaw)) + self.yaw * depth * self.fw * 0.3
        y = pts[:, 1] + self.nod * depth * self.fh * 0.18
        y = y - self.pivot_y
        xr = x * self.cos - y * self.sin
        yr = x * self.sin + y * self.cos + self.pivot_y
        out = np.stack([(xr + self.dx) * self.scale, (yr + self.dy) * self.scale], axis=1)
        return [tuple(p) for p in out.tolist()]

    def width(self, w: float) -> int:
        return max(1, int(round(w * self.scale)))


@functools.lru_cache(maxsize=64)
def _background(ident: Identity, size: int) -> Image.Image:
    """The static backdrop, built once per identity and size (it never moves)."""
    n = size * _SS
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    a = np.array(ident.bg_a, np.float32)
    b = np.array(ident.bg_b, np.float32)
    kind = ident.background
    if kind in ("solid", "chroma"):   # chroma: a flat key colour OBS removes (engine.toon.chroma)
        t = np.zeros_like(xx)
    elif kind == "gradient":
        t = yy
    elif kind == "dots":
        gx = (xx * 8) % 1 - 0.5
        gy = (yy * 8 + 0.5 * (np.floor(xx * 8) % 2)) % 1 - 0.5
        t = np.clip((0.18 - np.sqrt(gx**2 + gy**2)) * n / 8 + 0.5, 0, 1) * 0.6
    elif kind == "stripes":
        t = np.clip((np.abs(((xx + yy) * 6) % 1 - 0.5) - 0.25) * n / 6 + 0.5, 0, 1) * 0.5
    elif kind == "rings":
        r = np.sqrt((xx - 0.5) ** 2 + (yy - 0.45) ** 2)
        t = np.clip((np.abs((r * 7) % 1 - 0.5) - 0.25) * n / 7 + 0.5, 0, 1) * 0.45
    else:
        raise ValueError(f"unknown background {kind!r}")
    img = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    return Image.fromarray(img.astype(np.uint8), "RGB")


def _draw_hair_back(d: ImageDraw.ImageDraw, ident: Identity, P: _Pose) -> None:
    fw, fh, hc = ident.face_width, ident.face_height, ident.hair
    st = ident.hair_style
    if st == "long":
        pts = np.concatenate([
            _ellipse(0, -0.03, fw * 1.22, fh * 1.08, 48)[24:] * [1, 1],  # top arc
            np.array([[fw * 1.25, -0.03], [fw * 1.35, fh * 1.45], [-fw * 1.35, fh * 1.45], [-fw * 1.25, -0.03]]),
        ])
        d.polygon(P(pts, -0.6), fill=hc, outline=_shade(hc, 0.7), width=P.width(0.004))
    elif st == "bob":
        d.polygon(P(_ellipse(0, 0.0, fw * 1.25, fh * 1.12, 48), -0.6), fill=hc, outline=_shade(hc, 0.7), width=P.width(0.004))
    elif st == "bun":
        d.polygon(P(_ellipse(0, -fh * 1.12, fw * 0.45, fw * 0.42), -0.5), fill=hc, outline=_shade(hc, 0.7), width=P.width(0.004))
    elif st == "curly":
        for k in range(9):
            ang = math.pi * (0.95 + 1.1 * k / 8)
            cx, cy = math.cos(ang) * fw * 1.1, math.sin(ang) * fh * 0.95 - fh * 0.05
            d.polygon(P(_ellipse(cx, cy, fw * 0.3, fw * 0.3, 24), -0.6), fill=hc, outline=_shade(hc, 0.7), width=P.width(0.004))


def _draw_body(d: ImageDraw.ImageDraw, ident: Identity, P: _Pose) -> None:
    fw, fh = ident.face_width, ident.face_height
    neck = np.array([[-fw * 0.38, fh * 0.6], [fw * 0.38, fh * 0.6], [fw * 0.42, fh * 1.5], [-fw * 0.42, fh * 1.5]])
    d.polygon(P(neck, -0.8), fill=_shade(ident.skin, 0.86))
    body = _ellipse(0, fh * 1.95, fw * 2.1, fh * 0.85, 48)
    d.polygon(P(body, -1.0), fill=ident.shirt, outline=_shade(ident.shirt, 0.7), width=P.width(0.005))
    collar = _ellipse(0, fh * 1.2, fw * 0.45, fh * 0.2, 24)
    collar = collar[collar[:, 1] >= fh * 1.2]
    d.polygon(P(np.concatenate([collar, [[-fw * 0.45, fh * 1.2]]]), -0.9), fill=_shade(ident.skin, 0.86))


def _draw_ears(d: ImageDraw.ImageDraw, ident: Identity, P: _Pose) -> None:
    fw = ident.face_width
    for side in (-1, 1):
        ear = _ellipse(side * fw * 0.98, 0.01, fw * 0.16, fw * 0.24, 24)
        d.polygon(P(ear, -0.3), fill=ident.skin, outline=_shade(ident.skin, 0.7), width=P.width(0.004))
        if ident.earrings:
            d.polygon(P(_ellipse(side * fw * 0.99, fw * 0.27, fw * 0.05, fw * 0.05, 16), -0.3),
                      fill=ident.earring_colour, outline=_shade(ident.earring_colour, 0.7), width=P.width(0.002))


def _eye_outline(shape: str, a: float, b: float, n: int = 32) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = a * np.cos(t), b * np.sin(t)
    if shape == "almond":
        y = y * (np.abs(np.cos(t)) ** 0.1) * (1 - 0.35 * np.abs(np.cos(t)) ** 3)
    return np.stack([x, y], axis=1)


def _draw_eyes(d: ImageDraw.ImageDraw, ident: Identity, c: FaceControls, P: _Pose) -> None:
    fw, fh = ident.face_width, ident.face_height
    s = ident.eye_size
    a = fw * 0.2 * s * (1.15 if ident.eye_shape == "wide" else 1.0)
    b = fw * 0.22 * s * (0.75 if ident.eye_shape in ("almond", "wide") else 1.0)
    rest_lid = 0.35 if ident.eye_shape == "sleepy" else 0.0
    lid = min(1.0, rest_lid + (1 - rest_lid) * float(np.clip(c.blink, 0, 1)))
    ey = -fh * 0.05
    line = _shade(ident.skin, 0.35)
    look = 0.25 * c.yaw
    for side in (-1, 1):
        ex = side * fw * ident.eye_spacing
        outline = _eye_outline(ident.eye_shape, a, b) + [ex, ey]
        d.polygon(P(outline, 0.5), fill=(252, 252, 250))
        ir = min(a, b) * 0.72
        ix = ex + look * a * 0.3
        d.polygon(P(_ellipse(ix, ey + b * 0.08, ir, min(ir, b * 0.92), 24), 0.55), fill=ident.eye_colour)
        d.polygon(P(_ellipse(ix, ey + b * 0.08, ir * 0.5, min(ir, b * 0.92) * 0.5, 20), 0.55), fill=(18, 14, 14))
        d.polygon(P(_ellipse(ix + ir * 0.35, ey - b * 0.25, ir * 0.22, ir * 0.22, 12), 0.56), fill=(255, 255, 255))
        if lid > 0.01:
            # Upper lid: a skin cap from above the eye down to the lid line, with a lash line.
            yl = ey - b + 2 * b * lid
            xs = np.linspace(-a * 1.12, a * 1.12, 17)
            curve = yl - 0.25 * b * (1 - lid) * (1 - (xs / (a * 1.12)) ** 2)
            cap = np.concatenate([np.stack([xs + ex, curve], 1), [[ex + a * 1.12, ey - b * 1.3], [ex - a * 1.12, ey - b * 1.3]]])
            d.polygon(P(cap, 0.52), fill=ident.skin)
            d.line(P(np.stack([xs + ex, curve], 1)[1:-1], 0.52), fill=line, width=P.width(0.006), joint="curve")
        d.polygon(P(outline, 0.5), outline=line, width=P.width(0.005 if lid < 0.99 else 0.0))
        if ident.eye_shape != "sleepy" and lid < 0.6:
            lash = np.array([[ex + side * a * 0.85, ey - b * 0.55], [ex + side * a * 1.3, ey - b * 0.95]])
            d.line(P(lash, 0.5), fill=line, width=P.width(0.006))


def _draw_brows(d: ImageDraw.ImageDraw, ident: Identity, c: FaceControls, P: _Pose) -> None:
    if ident.brows == "none":
        return
    fw, fh = ident.face_width, ident.face_height
    colour = _shade(ident.hair, 0.8) if ident.hair_style != "bald" else _shade(ident.skin, 0.5)
    lift = 0.012 * float(c.mouth_open) - 0.006 * float(c.blink)
    thick = {"thin": 0.007, "thick": 0.016, "arched": 0.01}[ident.brows]
    arch = 0.6 if ident.brows == "arched" else 0.25
    for side in (-1, 1):
        ex = side * fw * ident.eye_spacing
        xs = np.linspace(-fw * 0.2, fw * 0.2, 9)
        ys = -fh * 0.3 - lift - arch * fw * 0.12 * (1 - (xs / (fw * 0.2)) ** 2) + side * xs * 0.08
        d.line(P(np.stack([xs + ex, ys], 1), 0.6), fill=colour, width=P.width(thick), joint="curve")


def _draw_nose_cheeks(d: ImageDraw.ImageDraw, ident: Identity, P: _Pose) -> None:
    fw, fh = ident.face_width, ident.face_height
    if ident.cheeks:
        blush = _mix(ident.skin, (250, 110, 120), 0.35)
        for side in (-1, 1):
            d.polygon(P(_ellipse(side * fw * 0.58, fh * 0.16, fw * 0.15, fw * 0.09, 24), 0.5), fill=blush)
    ns = ident.nose_size * fw
    nose = np.array([[-0.12 * ns, 0.16 * fh], [0.0, 0.19 * fh], [0.12 * ns, 0.16 * fh]])
    d.line(P(nose, 0.9), fill=_shade(ident.skin, 0.6), width=P.width(0.007), joint="curve")
    d.polygon(P(_ellipse(0.0, 0.12 * fh, 0.1 * ns, 0.07 * ns, 16), 0.9), fill=_shade(ident.skin, 0.92))


def _mouth_curves(ident: Identity, c: FaceControls) -> tuple[np.ndarray, np.ndarray, float]:
    """Upper and lower lip-line curves (x, y) in face-local units and the opening height."""
    fw, fh = ident.face_width, ident.face_height
    op = float(np.clip(c.mouth_open, 0, 1))
    wd = float(np.clip(c.mouth_width, 0, 1))
    rd = float(np.clip(c.mouth_round, 0, 1))
    half_w = fw * 0.36 * ident.mouth_width * (0.7 + 0.6 * wd) * (1 - 0.42 * rd)
    h = fh * 0.42 * op + rd * op * fh * 0.06
    cy = fh * 0.42 + op * fh * 0.06
    t = np.linspace(-1, 1, 25)
    p = 0.5 + 0.9 * rd  # rounder lips: fuller curve, less pointy corners
    bulge = (1 - t**2) ** (1 / (1 + p))
    smile = 0.06 * fw * (1 - rd) * (t**2 - 0.3)  # corners up
    upper = np.stack([t * half_w, cy - 0.3 * h * bulge - smile], 1)
    lower = np.stack([t * half_w, cy + 0.7 * h * bulge - smile], 1)
    return upper, lower, h


def _draw_mouth(d: ImageDraw.ImageDraw, ident: Identity, c: FaceControls, P: _Pose) -> None:
    upper, lower, h = _mouth_curves(ident, c)
    line = _shade(ident.lip, 0.55)
    if h < ident.face_height * 0.012:
        d.line(P(upper, 0.8), fill=line, width=P.width(0.008), joint="curve")
        return
    d.polygon(P(np.concatenate([upper, lower[::-1]]), 0.8), fill=(90, 24, 34))
    teeth_low = upper.copy()
    teeth_low[:, 1] += np.minimum(h * 0.28, lower[:, 1] - upper[:, 1])
    d.polygon(P(np.concatenate([upper, teeth_low[::-1]]), 0.8), fill=(250, 250, 246))
    tongue_top = lower.copy()
    tongue_top[:, 1] -= np.minimum(h * 0.3, lower[:, 1] - upper[:, 1]) * (1 - np.linspace(-1, 1, len(lower)) ** 2)
    d.polygon(P(np.concatenate([lower[4:-4], tongue_top[4:-4][::-1]]), 0.8), fill=(226, 104, 118))
    d.polygon(P(np.concatenate([upper, lower[::-1]]), 0.8), outline=ident.lip, width=P.width(0.009))


def _draw_hair_front(d: ImageDraw.ImageDraw, ident: Identity, P: _Pose) -> None:
    fw, fh, hc = ident.face_width, ident.face_height, ident.hair
    st = ident.hair_style
    out = _shade(hc, 0.7)
    wline = P.width(0.004)
    if st == "bald":
        return
    cap = _ellipse(0, -fh * 0.25, fw * 1.06, fh * 0.82, 48)
    cap = cap[cap[:, 1] <= -fh * 0.25]
    if st in ("short", "bob", "long", "bun", "curly", "side"):
        xs = np.linspace(fw * 1.06, -fw * 1.06, 15)
        if st == "side":
            fringe = -fh * 0.4 + fh * 0.1 * np.cos(xs / fw * 1.4) - fh * 0.08 * (xs / fw)
        elif st == "curly":
            fringe = -fh * 0.5 + 0.04 * np.abs(np.sin(xs / fw * 6))
        else:
            fringe = -fh * 0.44 + fh * 0.06 * np.cos(xs / fw * 1.5)
        pts = np.concatenate([cap, np.stack([xs, fringe], 1)])
        d.polygon(P(pts, 0.2), fill=hc, outline=out, width=wline)
    elif st == "spiky":
        n = 9
        xs = np.linspace(-fw * 1.05, fw * 1.05, 2 * n + 1)
        ys = np.where(np.arange(2 * n + 1) % 2 == 0, -fh * 0.35, -fh * 1.2 + 0.25 * fh * (xs / fw) ** 2)
        pts = np.concatenate([np.stack([xs, ys], 1), [[fw * 1.0, -fh * 0.2], [-fw * 1.0, -fh * 0.2]]])
        d.polygon(P(pts, 0.2), fill=hc, outline=out, width=wline)
    elif st == "mohawk":
        pts = _ellipse(0, -fh * 0.85, fw * 0.22, fh * 0.45, 32)
        d.polygon(P(pts, 0.2), fill=hc, outline=out, width=wline)
    if st == "curly":
        for k in range(7):
            x = -fw * 0.85 + k * fw * 1.7 / 6
            d.polygon(P(_ellipse(x, -fh * 0.78 + 0.25 * fh * (x / fw) ** 2, fw * 0.2, fw * 0.2, 20), 0.25), fill=hc, outline=out, width=wline)


def _draw_hat(d: ImageDraw.ImageDraw, ident: Identity, P: _Pose) -> None:
    fw, fh, hc = ident.face_width, ident.face_height, ident.hat_colour
    out = _shade(hc, 0.65)
    w = P.width(0.004)
    if ident.hat == "beanie":
        dome = _ellipse(0, -fh * 0.55, fw * 1.12, fh * 0.72, 48)
        dome = dome[dome[:, 1] <= -fh * 0.55]
        d.polygon(P(np.concatenate([dome, [[-fw * 1.12, -fh * 0.55]]]), 0.2), fill=hc, outline=out, width=w)
        band = np.array([[-fw * 1.16, -fh * 0.7], [fw * 1.16, -fh * 0.7], [fw * 1.16, -fh * 0.5], [-fw * 1.16, -fh * 0.5]])
        d.polygon(P(band, 0.25), fill=_shade(hc, 0.85), outline=out, width=w)
        d.polygon(P(_ellipse(0, -fh * 1.26, fw * 0.16, fw * 0.16, 20), 0.2), fill=(245, 245, 245), outline=out, width=w)
    elif ident.hat == "cap":
        dome = _ellipse(0, -fh * 0.5, fw * 1.08, fh * 0.72, 48)
        dome = dome[dome[:, 1] <= -fh * 0.5]
        d.polygon(P(np.concatenate([dome, [[-fw * 1.08, -fh * 0.5]]]), 0.2), fill=hc, outline=out, width=w)
        brim = _ellipse(fw * 0.35, -fh * 0.5, fw * 0.95, fh * 0.1, 32)
        brim = brim[brim[:, 1] >= -fh * 0.5]
        d.polygon(P(np.concatenate([[[-fw * 0.6, -fh * 0.5]], brim]), 0.4), fill=_shade(hc, 0.85), outline=out, width=w)
    elif ident.hat == "bow":
        cx, cy = fw * 0.55, -fh * 0.88
        for side in (-1, 1):
            wing = np.array([[cx, cy], [cx + side * fw * 0.4, cy - fh * 0.16], [cx + side * fw * 0.4, cy + fh * 0.16]])
            d.polygon(P(wing, 0.2), fill=hc, outline=out, width=w)
        d.polygon(P(_ellipse(cx, cy, fw * 0.09, fw * 0.09, 16), 0.2), fill=_shade(hc, 0.85), outline=out, width=w)


def _draw_glasses(d: ImageDraw.ImageDraw, ident: Identity, P: _Pose) -> None:
    if ident.glasses == "none":
        return
    fw, fh = ident.face_width, ident.face_height
    r = fw * 0.29 * max(1.0, ident.eye_size)
    ey = -fh * 0.05
    w = P.width(0.008)
    for side in (-1, 1):
        ex = side * fw * ident.eye_spacing
        if ident.glasses == "round":
            frame = _ellipse(ex, ey, r, r * 0.92, 32)
        else:
            frame = np.array([[ex - r, ey - r * 0.75], [ex + r, ey - r * 0.75], [ex + r * 0.92, ey + r * 0.75], [ex - r * 0.92, ey + r * 0.75]])
        d.polygon(P(frame, 0.7), outline=ident.glasses_colour, width=w)
        arm = np.array([[ex + side * r, ey - r * 0.2], [side * fw * 0.98, ey - r * 0.35]])
        d.line(P(arm, 0.5), fill=ident.glasses_colour, width=w)
    inner = fw * ident.eye_spacing - r
    bridge = np.array([[-inner, ey - r * 0.2], [0, ey - r * 0.35], [inner, ey - r * 0.2]])
    d.line(P(bridge, 0.7), fill=ident.glasses_colour, width=w, joint="curve")


def render_frame(identity: Identity, controls: FaceControls | None = None, size: int = 256) -> np.ndarray:
    """Draw one RGB frame (uint8, size x size x 3) of `identity` under `controls`."""
    if not isinstance(size, int) or size < 32:
        raise ValueError(f"render_frame: size must be an int >= 32, got {size!r}")
    c = controls if controls is not None else FaceControls()
    img = _background(identity, size).copy()
    d = ImageDraw.Draw(img)
    P = _Pose(identity, c, size)
    _draw_hair_back(d, identity, P)
    _draw_body(d, identity, P)
    _draw_ears(d, identity, P)
    face = _face_outline(identity, float(np.clip(c.mouth_open, 0, 1)))
    d.polygon(P(face, 0.0), fill=identity.skin, outline=_shade(identity.skin, 0.62), width=P.width(0.006))
    _draw_nose_cheeks(d, identity, P)
    _draw_eyes(d, identity, c, P)
    _draw_brows(d, identity, c, P)
    _draw_mouth(d, identity, c, P)
    _draw_hair_front(d, identity, P)
    _draw_hat(d, identity, P)
    _draw_glasses(d, identity, P)
    return np.asarray(img.reduce(_SS))


def render_portrait(identity: Identity, size: int = 256) -> np.ndarray:
    """The neutral avatar picture (mouth closed, eyes open, head straight), uint8 HxWx3.

    This is what the app saves as an avatar's reference image, so it is simply frame zero of the
    renderer under neutral controls (the model then sees the same look it was trained on).
    """
    return render_frame(identity, FaceControls(), size)

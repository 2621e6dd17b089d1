"""Where an identity's eyes and mouth sit in its neutral portrait: boxes in pixels.

Why a module of its own: the reference decoder's loss weights these regions, and the evaluation
measures fidelity, smear and blinks inside them; both must use the same geometry as the renderer
(head centre, eye row, glasses radius), which is what this reads off the identity.
"""

from __future__ import annotations

from engine.toon.identity import Identity

_HEAD_CX, _HEAD_CY = 0.5, 0.46  # as in render.py


def eye_box(ident: Identity, size: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) around both eyes, their glasses and brows."""
    fw, fh = ident.face_width, ident.face_height
    r = fw * 0.3 * max(1.0, ident.eye_size)
    ey = _HEAD_CY - fh * 0.05
    top = _HEAD_CY - fh * 0.3 - fw * 0.1
    bottom = ey + r
    half = fw * ident.eye_spacing + r
    return _px(top, bottom, _HEAD_CX - half, _HEAD_CX + half, size)


def mouth_box(ident: Identity, size: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) around the mouth at its widest and lowest (jaw dropped)."""
    fw, fh = ident.face_width, ident.face_height
    half = fw * 0.36 * ident.mouth_width * 1.3 + fw * 0.05
    top = _HEAD_CY + fh * 0.42 - fh * 0.2
    bottom = _HEAD_CY + fh * 0.42 + fh * 0.55
    return _px(top, bottom, _HEAD_CX - half, _HEAD_CX + half, size)


def _px(top: float, bottom: float, left: float, right: float, size: int) -> tuple[int, int, int, int]:
    clip = lambda v: int(min(size, max(0, round(v * size))))  # noqa: E731
    return clip(top), clip(bottom), clip(left), clip(right)


def eye_boxes(ident: Identity, size: int) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of each eye alone (the white and the iris), left eye first."""
    fw, fh = ident.face_width, ident.face_height
    s = ident.eye_size
    a = fw * 0.2 * s * (1.15 if ident.eye_shape == "wide" else 1.0) * 1.1
    b = fw * 0.22 * s * (0.75 if ident.eye_shape in ("almond", "wide") else 1.0) * 1.1
    ey = _HEAD_CY - fh * 0.05
    return [_px(ey - b, ey + b, _HEAD_CX + side * fw * ident.eye_spacing - a,
                _HEAD_CX + side * fw * ident.eye_spacing + a, size) for side in (-1, 1)]

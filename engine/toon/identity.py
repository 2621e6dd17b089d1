"""Procedural cartoon identities: every look the toon model is trained on comes from a seed.

An `Identity` is plain data (colours, shapes, choices) so it can be logged, compared and
drawn by `render.py`; nothing here draws. The same seed always gives the same identity.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

Color = tuple[int, int, int]

FACE_SHAPES = ("round", "oval", "square", "heart", "long")
HAIR_STYLES = ("bald", "short", "bob", "long", "bun", "spiky", "curly", "mohawk", "side")
EYE_SHAPES = ("round", "almond", "wide", "sleepy")
BROW_STYLES = ("none", "thin", "thick", "arched")
GLASSES = ("none", "round", "square")
HATS = ("none", "beanie", "cap", "bow")
BACKGROUNDS = ("solid", "gradient", "dots", "stripes", "rings")

SKIN_TONES: tuple[Color, ...] = (
    (255, 224, 196), (245, 205, 170), (234, 186, 146), (214, 160, 118), (190, 134, 94),
    (160, 106, 72), (124, 80, 54), (96, 62, 42), (255, 214, 214), (200, 230, 170),
    (170, 210, 250), (230, 200, 250),
)
HAIR_COLOURS: tuple[Color, ...] = (
    (30, 24, 22), (70, 44, 28), (120, 76, 40), (180, 130, 70), (230, 200, 120),
    (200, 80, 40), (150, 150, 150), (240, 240, 235), (220, 70, 140), (70, 120, 220),
    (60, 170, 120), (130, 70, 190),
)
EYE_COLOURS: tuple[Color, ...] = (
    (70, 45, 25), (40, 90, 160), (50, 130, 80), (120, 90, 40), (60, 60, 70), (110, 60, 150),
)
GLASSES_COLOURS: tuple[Color, ...] = ((30, 30, 30), (150, 40, 40), (40, 60, 140), (200, 160, 60))
EARRING_COLOURS: tuple[Color, ...] = ((240, 200, 60), (210, 210, 220), (230, 60, 90))
# Ranges random_identity draws from: (low, high) of each size and of the pastel colours' HSV saturation
# and value. The avatar creator offers only values inside them (engine.toon.creator).
SIZE_RANGES: dict[str, tuple[float, float]] = {
    "face_width": (0.21, 0.26), "face_height": (0.26, 0.31), "eye_size": (0.85, 1.2),
    "eye_spacing": (0.38, 0.48), "nose_size": (0.7, 1.3), "mouth_width": (0.85, 1.15),
}
PASTEL_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "bg_a": ((0.15, 0.55), (0.75, 1.0)), "bg_b": ((0.15, 0.55), (0.6, 0.95)),
    "hat_colour": ((0.5, 0.9), (0.5, 0.95)), "shirt": ((0.3, 0.8), (0.4, 0.95)),
}
SKIN_JITTER, HAIR_JITTER = 8, 12


@dataclass(frozen=True)
class Identity:
    """Everything that makes one avatar look like itself (units: fractions of the image size)."""

    seed: int
    face_shape: str
    face_width: float
    face_height: float
    skin: Color
    cheeks: bool
    hair_style: str
    hair: Color
    eye_shape: str
    eye_colour: Color
    eye_size: float
    eye_spacing: float
    brows: str
    nose_size: float
    mouth_width: float
    lip: Color
    glasses: str
    glasses_colour: Color
    hat: str
    hat_colour: Color
    earrings: bool
    earring_colour: Color
    shirt: Color
    background: str
    bg_a: Color
    bg_b: Color


def _pastel(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> Color:
    h = rng.random()
    s = rng.uniform(*sat)
    v = rng.uniform(*val)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (int(r * 255), int(g * 255), int(b * 255))


def _pick(rng: np.random.Generator, options: tuple, weights: tuple[float, ...] | None = None):
    p = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        p = w / w.sum()
    return options[int(rng.choice(len(options), p=p))]


def _jitter(rng: np.random.Generator, colour: Color, amount: int) -> Color:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)  # type: ignore[return-value]


def lip_for(skin: Color) -> Color:
    """The lip colour follows the skin (a darker, redder shade), so it is never a choice of its own."""
    return tuple(int(c) for c in np.clip(np.array(skin) * np.array([0.85, 0.55, 0.55]) + [20, 0, 10], 0, 255))  # type: ignore[return-value]


def random_identity(seed: int) -> Identity:
    """Draw one identity; deterministic in `seed` (numpy PCG64, no global RNG)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"random_identity: seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    skin = _jitter(rng, _pick(rng, SKIN_TONES, (3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1)), SKIN_JITTER)
    bg_a = _pastel(rng, *PASTEL_RANGES["bg_a"])
    bg_b = _pastel(rng, *PASTEL_RANGES["bg_b"])
    return Identity(
        seed=int(seed),
        face_shape=_pick(rng, FACE_SHAPES),
        face_width=float(rng.uniform(*SIZE_RANGES["face_width"])),
        face_height=float(rng.uniform(*SIZE_RANGES["face_height"])),
        skin=skin,
        cheeks=bool(rng.random() < 0.6),
        hair_style=_pick(rng, HAIR_STYLES, (1, 3, 2, 2, 1.5, 1.5, 1.5, 0.7, 2)),
        hair=_jitter(rng, _pick(rng, HAIR_COLOURS), HAIR_JITTER),
        eye_shape=_pick(rng, EYE_SHAPES),
        eye_colour=_pick(rng, EYE_COLOURS),
        eye_size=float(rng.uniform(*SIZE_RANGES["eye_size"])),
        eye_spacing=float(rng.uniform(*SIZE_RANGES["eye_spacing"])),
        brows=_pick(rng, BROW_STYLES, (1, 3, 3, 3)),
        nose_size=float(rng.uniform(*SIZE_RANGES["nose_size"])),
        mouth_width=float(rng.uniform(*SIZE_RANGES["mouth_width"])),
        lip=lip_for(skin),
        glasses=_pick(rng, GLASSES, (6, 2, 2)),
        glasses_colour=_pick(rng, GLASSES_COLOURS),
        hat=_pick(rng, HATS, (8, 1.5, 1.5, 1)),
        hat_colour=_pastel(rng, *PASTEL_RANGES["hat_colour"]),
        earrings=bool(rng.random() < 0.25),
        earring_colour=_pick(rng, EARRING_COLOURS),
        shirt=_pastel(rng, *PASTEL_RANGES["shirt"]),
        background=_pick(rng, BACKGROUNDS),
        bg_a=bg_a,
        bg_b=bg_b,
    )

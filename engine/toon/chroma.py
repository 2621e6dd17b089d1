"""Green-screen backgrounds: the key colours an avatar can stand on, and whether OBS could key it cleanly.

Why a check: OBS's Chroma Key filter removes every pixel whose chroma (the CbCr plane, brightness
ignored) lies within `similarity` of the key, fading out over `smoothness`. A green shirt or green
hair would turn see-through with the background, so the creator names the part that is too close
and suggests a key colour that is not. The numbers here are the ones the OBS filter is given, so the
check and the filter agree.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.toon.identity import Color, Identity, random_identity

# Pure primaries and magenta: the generator's palettes (pastels with saturation <= 0.9 and value
# <= 0.95, tabled skin/hair/eye colours) never reach them, so a key never matches a colour exactly.
KEY_COLOURS: dict[str, Color] = {"green": (0, 255, 0), "blue": (0, 0, 255), "magenta": (255, 0, 255)}


@dataclass(frozen=True)
class KeyTuning:
    """OBS chroma_key_filter_v2 settings (its units: thousandths of a CbCr distance)."""

    similarity: int = 300
    smoothness: int = 60
    spill: int = 100
    margin: float = 0.03   # extra CbCr distance an avatar colour must keep beyond what OBS fades

    @property
    def safe_distance(self) -> float:
        return (self.similarity + self.smoothness) / 1000 + self.margin


def key_name(colour: Color) -> str | None:
    """The name of a key colour ('green'), or None when `colour` is not one."""
    return next((n for n, c in KEY_COLOURS.items() if tuple(c) == tuple(colour)), None)


def off_key(ident: Identity) -> Identity:
    """The avatar on its generator background (its seed's own) instead of a key colour.

    Why: the shipped model learned avatars on the generator's backgrounds only; anchored on a flat
    key colour it moves the mouth less (20 s of held-out speech, same avatars and seed, mean jaw
    while speaking: 0.24 -> 0.12 on green and 0.09 on blue for one avatar, 0.26 -> 0.21 and 0.17
    for another). Its rig draws the key, so the model never needs to see it.
    """
    if ident.background != "chroma":
        return ident
    own = random_identity(ident.seed)
    return replace(ident, background=own.background, bg_a=own.bg_a, bg_b=own.bg_b)


def cbcr(colour: Color) -> np.ndarray:
    """Chroma of an sRGB colour as OBS's shader computes it (BT.709, 0..1, grey at 0.5, 0.5)."""
    r, g, b = (np.asarray(colour, np.float64) / 255.0)
    return np.array([-0.1146 * r - 0.3854 * g + 0.5 * b + 0.5, 0.5 * r - 0.4542 * g - 0.0458 * b + 0.5])


def key_distance(a: Color, b: Color) -> float:
    return float(np.linalg.norm(cbcr(a) - cbcr(b)))


def avatar_colours(ident: Identity) -> dict[str, Color]:
    """The avatar's own colours that are drawn (a hat colour only with a hat, and so on)."""
    out = {"skin": ident.skin, "lips": ident.lip, "eyes": ident.eye_colour, "clothes": ident.shirt}
    if ident.hair_style != "bald" or ident.brows != "none":
        out["hair"] = ident.hair
    if ident.hat != "none":
        out["hat"] = ident.hat_colour
    if ident.glasses != "none":
        out["glasses"] = ident.glasses_colour
    if ident.earrings:
        out["earrings"] = ident.earring_colour
    return out


def conflicts(ident: Identity, key: Color, tuning: KeyTuning = KeyTuning()) -> dict[str, float]:
    """Parts of the avatar whose colour OBS would (partly) key out with `key`: {part: distance}."""
    far = tuning.safe_distance
    return {part: d for part, c in avatar_colours(ident).items() if (d := key_distance(c, key)) < far}


def safe_keys(ident: Identity, tuning: KeyTuning = KeyTuning()) -> list[str]:
    """Key colour names that leave every part of this avatar opaque, best first."""
    ok = [n for n, c in KEY_COLOURS.items() if not conflicts(ident, c, tuning)]
    return sorted(ok, key=lambda n: -min(key_distance(c, KEY_COLOURS[n]) for c in avatar_colours(ident).values()))


def conflict_message(ident: Identity, tuning: KeyTuning = KeyTuning()) -> str | None:
    """One sentence when the avatar's green screen would eat part of it, else None."""
    if ident.background != "chroma":
        return None
    name = key_name(ident.bg_a) or str(ident.bg_a)
    hit = conflicts(ident, ident.bg_a, tuning)
    if not hit:
        return None
    parts = " and ".join(sorted(hit))
    others = [k for k in safe_keys(ident, tuning) if k != name]
    fix = f"use the {others[0]} screen instead" if others else "change those colours"
    return (f"the {name} screen is too close to the avatar's {parts}: OBS would make them see-through; "
            f"{fix}")

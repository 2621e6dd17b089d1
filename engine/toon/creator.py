"""The avatar creator's vocabulary: every choice the cartoon generator makes, as a control.

Why only the generator's own options: the default model was trained on `random_identity` draws,
so it draws well exactly what those draws can contain. Every control here offers values inside the
generator's option lists and ranges (`identity.py`), a "random" per control copies that control
from a fresh generator draw (the generator's own distribution), and `check_identity` refuses a
card edited by hand beyond them. The one addition is the green-screen background (a flat key colour
the avatar itself never uses, `engine.toon.chroma`), so OBS can cut the avatar out.
"""
from __future__ import annotations

import colorsys
import dataclasses
from dataclasses import dataclass

import numpy as np

from engine.toon import identity as gen
from engine.toon.chroma import KEY_COLOURS, key_name
from engine.toon.identity import Color, Identity, lip_for, random_identity

BACKGROUNDS = gen.BACKGROUNDS + ("chroma",)   # "chroma": a green screen (key colour in bg_a and bg_b)


def _pastels(field: str, n: int = 12) -> tuple[Color, ...]:
    """A palette of `n` hues at the middle of the generator's saturation/value range for `field`."""
    (s0, s1), (v0, v1) = gen.PASTEL_RANGES[field]
    s, v = (s0 + s1) / 2, (v0 + v1) / 2
    return tuple(tuple(int(c * 255) for c in colorsys.hsv_to_rgb(h / n, s, v)) for h in range(n))  # type: ignore[misc]


@dataclass(frozen=True)
class Control:
    """One row of the creator: a label, the identity fields it sets, and its kind of widget."""

    name: str                 # the identity field the widget shows
    label: str
    kind: str                 # "choice" | "colour" | "size" | "toggle"
    options: tuple = ()       # choices or colours; sizes use gen.SIZE_RANGES[name]
    also: tuple[str, ...] = ()   # fields a per-control "random" copies too (they belong together)


CONTROLS: tuple[Control, ...] = (
    Control("face_shape", "Face shape", "choice", gen.FACE_SHAPES),
    Control("face_width", "Face width", "size"),
    Control("face_height", "Face height", "size"),
    Control("skin", "Skin tone", "colour", gen.SKIN_TONES, also=("lip",)),
    Control("cheeks", "Blush", "toggle"),
    Control("hair_style", "Hair style", "choice", gen.HAIR_STYLES),
    Control("hair", "Hair colour", "colour", gen.HAIR_COLOURS),
    Control("eye_shape", "Eye shape", "choice", gen.EYE_SHAPES),
    Control("eye_colour", "Eye colour", "colour", gen.EYE_COLOURS),
    Control("eye_size", "Eye size", "size"),
    Control("eye_spacing", "Eye spacing", "size"),
    Control("brows", "Brows", "choice", gen.BROW_STYLES),
    Control("nose_size", "Nose", "size"),
    Control("mouth_width", "Mouth width", "size"),
    Control("glasses", "Glasses", "choice", gen.GLASSES),
    Control("glasses_colour", "Glasses colour", "colour", gen.GLASSES_COLOURS),
    Control("hat", "Hat", "choice", gen.HATS),
    Control("hat_colour", "Hat colour", "colour", _pastels("hat_colour")),
    Control("earrings", "Earrings", "toggle"),
    Control("earring_colour", "Earring colour", "colour", gen.EARRING_COLOURS),
    Control("shirt", "Clothes colour", "colour", _pastels("shirt")),
    Control("background", "Background", "choice", BACKGROUNDS, also=("bg_a", "bg_b")),
    Control("bg_a", "Background colour", "colour", _pastels("bg_a")),
    Control("bg_b", "Pattern colour", "colour", _pastels("bg_b")),
)
CONTROL_BY_NAME = {c.name: c for c in CONTROLS}


def set_control(ident: Identity, name: str, value) -> Identity:
    """`ident` with one control changed; the fields that follow it (lip, the key colour) follow."""
    control = CONTROL_BY_NAME.get(name)
    if control is None:
        raise ValueError(f"no creator control {name!r}; controls: {', '.join(CONTROL_BY_NAME)}")
    if control.kind == "colour":
        value = tuple(int(c) for c in value)
    elif control.kind == "size":
        value = float(value)
    elif control.kind == "toggle":
        value = bool(value)
    changes = {name: value}
    if name == "skin":
        changes["lip"] = lip_for(value)
    if name in ("bg_a", "bg_b") and ident.background == "chroma":
        raise ValueError("a green-screen background is one flat key colour: pick it with set_key")
    if name == "background" and value == "chroma":
        changes.update(bg_a=KEY_COLOURS["green"], bg_b=KEY_COLOURS["green"])
    elif name == "background" and ident.background == "chroma":
        fresh = random_identity(ident.seed)
        changes.update(bg_a=fresh.bg_a, bg_b=fresh.bg_b)
    out = dataclasses.replace(ident, **changes)
    check_identity(out)
    return out


def set_key(ident: Identity, key: str) -> Identity:
    """A green-screen background in the named key colour ('green', 'blue', 'magenta')."""
    if key not in KEY_COLOURS:
        raise ValueError(f"unknown key colour {key!r}; choose one of {', '.join(KEY_COLOURS)}")
    return dataclasses.replace(ident, background="chroma", bg_a=KEY_COLOURS[key], bg_b=KEY_COLOURS[key])


def reroll(ident: Identity, name: str, rng: np.random.Generator) -> Identity:
    """One control (with the fields that belong to it) drawn afresh from the generator itself."""
    control = CONTROL_BY_NAME[name]
    fresh = random_identity(int(rng.integers(2**31)))
    fields = (control.name, *control.also)
    if ident.background == "chroma" and name in ("bg_a", "bg_b"):
        return ident     # a green screen has no pattern colours to draw
    return dataclasses.replace(ident, **{f: getattr(fresh, f) for f in fields})


def training_identity(seed: int, green_screen: float = 0.0) -> Identity:
    """The generator's avatar of `seed`, stood on a key colour (green, blue, magenta) for a
    `green_screen` share of seeds: the model, the rig's reader and the mouth probe learn
    green-screen creator avatars too, the rest of each avatar unchanged."""
    ident = random_identity(int(seed))
    rng = np.random.default_rng([int(seed), 29])
    if rng.random() < green_screen:
        ident = set_key(ident, str(rng.choice(list(KEY_COLOURS))))
    return ident


def sample_creator(seed: int) -> Identity:
    """A creator-made combination for the evaluation: every control from its own generator draw,
    and a green screen one time in three, so combinations no single seed makes are measured too."""
    rng = np.random.default_rng([seed, 13])
    ident = random_identity(int(seed))
    for control in CONTROLS:
        ident = reroll(ident, control.name, rng)
    if rng.random() < 1 / 3:
        ident = set_key(ident, str(rng.choice(list(KEY_COLOURS))))
    return ident


# ---------------------------------------------------------------------------------------- the card

def _near_table(colour: Color, table: tuple[Color, ...], jitter: int) -> bool:
    return any(max(abs(a - b) for a, b in zip(colour, t)) <= jitter for t in table)


def _in_pastel(colour: Color, field: str, slack: float = 0.02) -> bool:
    (s0, s1), (v0, v1) = gen.PASTEL_RANGES[field]
    _, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
    return s0 - slack <= s <= s1 + slack and v0 - slack <= v <= v1 + slack


def problems(ident: Identity) -> list[str]:
    """What in `ident` lies outside what the generator draws (empty: the model knows this avatar)."""
    out = []
    for control in CONTROLS:
        value = getattr(ident, control.name)
        if control.kind == "choice" and value not in control.options:
            out.append(f"{control.name} {value!r} is not one of {', '.join(control.options)}")
        elif control.kind == "size":
            lo, hi = gen.SIZE_RANGES[control.name]
            if not lo - 1e-9 <= value <= hi + 1e-9:
                out.append(f"{control.name} {value:g} is outside {lo:g}..{hi:g}")
    checks = {"skin": _near_table(ident.skin, gen.SKIN_TONES, gen.SKIN_JITTER),
              "hair": _near_table(ident.hair, gen.HAIR_COLOURS, gen.HAIR_JITTER),
              "eye_colour": ident.eye_colour in gen.EYE_COLOURS,
              "glasses_colour": ident.glasses_colour in gen.GLASSES_COLOURS,
              "earring_colour": ident.earring_colour in gen.EARRING_COLOURS,
              "lip": ident.lip == lip_for(ident.skin),
              "hat_colour": _in_pastel(ident.hat_colour, "hat_colour"),
              "shirt": _in_pastel(ident.shirt, "shirt")}
    if ident.background == "chroma":
        checks["bg_a"] = key_name(ident.bg_a) is not None and ident.bg_b == ident.bg_a
    else:
        checks["bg_a"], checks["bg_b"] = _in_pastel(ident.bg_a, "bg_a"), _in_pastel(ident.bg_b, "bg_b")
    out += [f"{name} {getattr(ident, name)} is not a colour the generator uses" for name, ok in checks.items() if not ok]
    return out


def check_identity(ident: Identity) -> None:
    """ValueError naming every field outside the generator's options."""
    found = problems(ident)
    if found:
        raise ValueError("this avatar is outside what the default model draws: " + "; ".join(found))


def identity_to_card(ident: Identity) -> dict:
    """Plain YAML-friendly data: colours as [r, g, b] lists, every field."""
    return {f.name: list(v) if isinstance(v := getattr(ident, f.name), tuple) else v
            for f in dataclasses.fields(Identity)}


def identity_from_card(data: dict) -> Identity:
    """The identity a card stores; ValueError when a field is missing, extra or out of range."""
    if not isinstance(data, dict):
        raise ValueError("the avatar's look must be a mapping of its fields")
    names = [f.name for f in dataclasses.fields(Identity)]
    missing, extra = [n for n in names if n not in data], [k for k in data if k not in names]
    if missing or extra:
        raise ValueError(f"the avatar's look has missing fields {missing} or unknown ones {extra}")
    values = {}
    for f in dataclasses.fields(Identity):
        v = data[f.name]
        if f.type in ("Color", Color):
            if not (isinstance(v, (list, tuple)) and len(v) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in v)):
                raise ValueError(f"the avatar's {f.name} must be three integers 0..255, got {v!r}")
            v = tuple(v)
        values[f.name] = v
    ident = Identity(**values)
    check_identity(ident)
    return ident

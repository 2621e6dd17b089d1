"""Creator choices as text, for `avatarcam avatars new --look FIELD=VALUE` and `avatarcam avatars options`.

Why text: a terminal user builds an avatar the same way the Avatars page does, control by control,
starting from a seed; values are the option names and palette numbers `avatars options` lists.
"""
from __future__ import annotations

import numpy as np

from engine.toon import identity as gen
from engine.toon.chroma import KEY_COLOURS, conflict_message
from engine.toon.creator import CONTROL_BY_NAME, CONTROLS, reroll, set_control, set_key
from engine.toon.identity import Identity, random_identity

from .errors import ConfigError


def parse_value(name: str, text: str):
    """The value a control takes from `text`: an option name, a palette number or 'r,g,b', a size, yes/no."""
    control = CONTROL_BY_NAME.get(name)
    if control is None:
        raise ConfigError(f"no avatar control {name!r}; `avatarcam avatars options` lists them")
    text = text.strip()
    if control.kind == "choice":
        if text not in control.options:
            raise ConfigError(f"{name} must be one of {', '.join(control.options)}, got {text!r}")
        return text
    if control.kind == "toggle":
        if text.lower() not in ("yes", "no", "true", "false", "on", "off", "1", "0"):
            raise ConfigError(f"{name} must be yes or no, got {text!r}")
        return text.lower() in ("yes", "true", "on", "1")
    if control.kind == "size":
        lo, hi = gen.SIZE_RANGES[name]
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number {lo:g}..{hi:g}, got {text!r}") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{name} must be within {lo:g}..{hi:g} (what the model was trained on), got {value:g}")
        return value
    if text.isdigit() and int(text) < len(control.options):
        return control.options[int(text)]
    raise ConfigError(f"{name} must be a palette number 0..{len(control.options) - 1} "
                      f"(`avatarcam avatars options`), got {text!r}")


def build_look(seed: int, sets: list[str], randoms: list[str], key: str | None, rng_seed: int | None = None) -> Identity:
    """The seed's identity with `sets` (FIELD=VALUE) applied, `randoms` re-drawn, then the green screen."""
    ident = random_identity(seed)
    rng = np.random.default_rng(rng_seed)
    try:
        for name in randoms:
            if name not in CONTROL_BY_NAME:
                raise ConfigError(f"no avatar control {name!r}; `avatarcam avatars options` lists them")
            ident = reroll(ident, name, rng)
        for item in sets:
            name, sep, text = item.partition("=")
            if not sep:
                raise ConfigError(f"--look wants FIELD=VALUE, got {item!r}")
            ident = set_control(ident, name.strip(), parse_value(name.strip(), text))
        if key is not None:
            ident = set_key(ident, key)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return ident


def key_warning(ident: Identity) -> str | None:
    """The one-line warning when the green screen would cut into the avatar (it still streams)."""
    return conflict_message(ident)


def format_options() -> str:
    """Every control with its options, for the terminal."""
    lines = [f"green screen (--key): {', '.join(KEY_COLOURS)}"]
    for c in CONTROLS:
        if c.kind == "choice":
            what = ", ".join(c.options)
        elif c.kind == "colour":
            what = "  ".join(f"{i}:#{r:02x}{g:02x}{b:02x}" for i, (r, g, b) in enumerate(c.options))
        elif c.kind == "size":
            what = "{:g}..{:g}".format(*gen.SIZE_RANGES[c.name])
        else:
            what = "yes, no"
        lines.append(f"{c.name:<15} {c.label:<18} {what}")
    return "\n".join(lines)

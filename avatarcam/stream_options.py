"""Settings (+ command-line flags) -> the options of one stream: the one path every front end takes.

Why one function: `avatarcam run` and the tray app used to build their streams separately and got
different streams from the same settings file. `stream_options` owns every choice that decides
which stream runs: the device (`auto` is the GPU when PyTorch sees one), the avatar (a flag, else
`avatar.current`, else the library's first), its pinned model (else `engine.model`), the anchor
switches and the preset's block size, window and passes. The CLI, the tray app, the benchmarks and
`doctor` call it (doctor and the benchmarks through `model_for`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import AnchorSettings, Settings
from .errors import ConfigError, ModelError

if TYPE_CHECKING:
    from engine.toon.identity import Identity

    from .avatars import Avatar, AvatarLibrary


@dataclass
class SessionOptions:
    """What one stream uses; `stream_options` fills the stream's part, callers add inputs and outputs."""

    model: str | None = None                # a model name or card folder; None: engine.model
    avatar_image: np.ndarray | None = None
    avatar_name: str = ""                   # what the avatar is called (a library name or the image's path)
    avatar_identity: Identity | None = None   # a cartoon avatar's rig: the engine draws it sharp
    audio_file: Path | None = None          # None: the microphone from the settings
    realtime: bool | None = None            # pace a file like a mic (default: when a camera is on)
    camera: bool | None = None              # None: settings.camera.enabled, and no error if none exists
    record: Path | None = None
    obs: bool | None = None
    duration_s: float | None = None
    device: str | None = None               # None: engine.device from the settings ("auto", "cpu", "cuda")
    seed: int | None = 0
    stream_overrides: dict = field(default_factory=dict)
    preview: bool = False                   # emit "frame" events for a preview widget


def anchor_overrides(anchors: AnchorSettings) -> dict:
    """The anchor switches of the settings as stream overrides."""
    return {"style_anchor": anchors.style_anchor, "rope_reindex": anchors.rope_reindex,
            "anchor_audio_zero": anchors.anchor_audio_zero, "temporal_frames": anchors.temporal_frames}


def current_avatar(settings: Settings, library: AvatarLibrary) -> Avatar | None:
    """`avatar.current` from the library (ConfigError with the fix when it is gone); None when unset."""
    current = settings.avatar.current
    if not current:
        return None
    if current not in library:
        raise ConfigError(f"avatar.current: '{current}' is not in the avatar library; pick one with "
                          "`avatarcam avatars use NAME` (see `avatarcam avatars list`)")
    return library.get(current)


def model_for(settings: Settings, model: str | None = None, avatar: Avatar | None = None) -> str:
    """The model a stream uses: the flag, else the avatar's pinned model, else engine.model."""
    return model or (avatar.model if avatar is not None else None) or settings.engine.model


def pick_avatar(settings: Settings, library: AvatarLibrary, name_or_path: str | None = None
                ) -> tuple[np.ndarray, str, Avatar | None]:
    """(image, name, library avatar or None): an image file, a library avatar by name, avatar.current,
    else the library's first (an empty library gets the default avatar)."""
    from .pictures import load_picture
    if name_or_path and Path(name_or_path).expanduser().is_file():
        path = Path(name_or_path).expanduser()
        return np.asarray(load_picture(path)), str(path), None
    avatar = library.get(name_or_path) if name_or_path else current_avatar(settings, library) or library.default()
    return avatar.load_image(), avatar.name, avatar


def stream_overrides(settings: Settings, model: str) -> dict:
    """Anchor switches, plus the preset's B/L/N where they differ from the card's.

    A model that cannot be read gets the anchor switches only: the session reports the missing
    model itself when it starts, with the fix.
    """
    from . import presets
    out = anchor_overrides(settings.anchors)
    try:
        facts = presets.card_facts(model)
    except ModelError:
        return out
    out.update(presets.stream_fields(facts, presets.active_choice(settings.anchors, facts)))
    return out


def resolve_device(settings: Settings, device: str | None = None) -> str:
    """The device that will run: the flag, else engine.device; `auto` becomes cuda or cpu."""
    from .engine_choice import choose_engine
    return choose_engine(settings.engine, device).device


def stream_options(settings: Settings, *, avatar: str | None = None, model: str | None = None,
                   device: str | None = None, overrides: dict | None = None,
                   library: AvatarLibrary | None = None) -> SessionOptions:
    """The stream the settings describe; `avatar`, `model`, `device` and `overrides` are flags that win."""
    from .avatars import AvatarLibrary
    image, name, chosen = pick_avatar(settings, library if library is not None else AvatarLibrary(), avatar)
    wanted = model_for(settings, model, chosen)
    return SessionOptions(model=wanted, avatar_image=image, avatar_name=name,
                          avatar_identity=chosen.identity() if chosen is not None else None,
                          device=resolve_device(settings, device),
                          stream_overrides={**stream_overrides(settings, wanted), **(overrides or {})})

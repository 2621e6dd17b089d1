"""Settings and the avatar -> the keyed OBS source: only a green-screen avatar is keyed, and a key
colour too close to the avatar's own colours is said once (the stream goes on either way)."""
from __future__ import annotations

from typing import Callable

from engine.toon.chroma import conflict_message

from .avatars import data_dir
from .config import Settings
from .obs_keyed import KeyedSource

LAYOUT_FILE = "obs_keyed_layout.json"   # where the user left the keyed source in OBS, in the data dir


def green_screen(identity) -> tuple[int, int, int] | None:
    """The avatar's key colour when it stands on a green screen, else None."""
    return tuple(identity.bg_a) if identity is not None and identity.background == "chroma" else None


def keyed_source(s: Settings, identity, warn: Callable[[str, BaseException | None], None]) -> KeyedSource | None:
    """What to put into OBS for `obs.keyed`, or None (with one warning saying why when it was asked for)."""
    if not s.obs.keyed:
        return None
    key = green_screen(identity)
    if key is None:
        warn("OBS keying is on but this avatar has no green-screen background: make one in the avatar "
             "creator (Background: green screen); the camera source is not added", None)
        return None
    clash = conflict_message(identity)
    if clash:
        warn(clash[0].upper() + clash[1:], None)
    scene = s.obs.keyed_scene or s.obs.scene
    if not scene:
        warn("OBS keying is on but no scene is set: choose one on the OBS page", None)
        return None
    return KeyedSource(scene=scene, key=key, device=s.camera.device, layout_file=data_dir() / LAYOUT_FILE)

"""Settings and the avatar -> the keyed OBS source: only a green-screen avatar is keyed, and a key
colour too close to the avatar's own colours is said once (the stream goes on either way).

The same rule holds when the avatar is switched mid-stream (`Keying.follow`): OBS then has exactly
what a stream started with the new avatar would have. A green-screen avatar's source is re-keyed on
its colour and stays where the user put it. An avatar without a green screen takes the keyed source
out of the scene, with one warning, rather than leaving it unkeyed: unkeyed, its whole square
background would cover the user's game, which is the box around the avatar that keying is for
removing; switching back to a green-screen avatar puts the source back where it was.
"""
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
        warn("OBS keying is on but this avatar has no green-screen background, so it is not keyed into the "
             "OBS scene (its background would cover the scene): make one in the avatar creator "
             "(Background: green screen)", None)
        return None
    clash = conflict_message(identity)
    if clash:
        warn(clash[0].upper() + clash[1:], None)
    scene = s.obs.keyed_scene or s.obs.scene
    if not scene:
        warn("OBS keying is on but no scene is set: choose one on the OBS page", None)
        return None
    return KeyedSource(scene=scene, key=key, device=s.camera.device, layout_file=data_dir() / LAYOUT_FILE)


class Keying:
    """The keyed source of one stream, following the avatar; each warning is said once per change.

    A warning is said when the avatar's keying says something the previous avatar's did not:
    switching between two avatars without a green screen, or two with no scene set, stays quiet;
    a colour clash is said for each avatar switched to that has one."""

    def __init__(self, s: Settings, warn: Callable[[str, BaseException | None], None]):
        self.settings, self._warn = s, warn
        self._said: list[str] = []

    def source(self, identity) -> KeyedSource | None:
        """What to put into OBS for this avatar (see `keyed_source`), saying only what is new."""
        said: list[str] = []
        keyed = keyed_source(self.settings, identity, lambda text, cause: said.append(text))
        for text in said:
            if text not in self._said:
                self._warn(text, None)
        self._said = said
        return keyed

    def follow(self, obs, identity) -> None:
        """A mid-stream switch: OBS's keyed source follows `identity` (never blocks: OBS's worker does it)."""
        obs.set_keyed(self.source(identity))

"""The avatar cut out over the user's OBS scene: a capture source of AvatarCam's camera with a Chroma Key.

Why over obs-websocket: a virtual camera cannot carry transparency, so the avatar stands on a
green screen (a creator background, `engine.toon.chroma`) and OBS keys it out. AvatarCam owns one
input (`KeyedSource.input_name`): it creates or updates it in the chosen scene with a filter tuned
to the avatar's key colour, and removes it on restore, so the scene is as it was. Where the user
moved and sized it is kept in a small file and applied the next time it is created. A switch to
another green-screen avatar mid-stream only re-tunes the filter (`KeyedCamera.rekey`), so the source
stays where the user has it now.

Input kinds per OS (the camera AvatarCam writes to): Linux `v4l2_input` (device_id, the
v4l2loopback device, /dev/video10 by default); Windows `dshow_input` (video_device_id, "OBS Virtual
Camera:"); macOS `av_capture_input_v2` (device_name, "OBS Virtual Camera").
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.toon.chroma import KeyTuning
from engine.toon.identity import Color

from .obs_link import Failed, Link, obsreq

log = logging.getLogger("avatarcam.obs")

FILTER_KIND = "chroma_key_filter_v2"
_LAYOUT_KEYS = ("positionX", "positionY", "rotation", "scaleX", "scaleY", "alignment", "cropLeft", "cropRight",
                "cropTop", "cropBottom")
_BOUNDS_KEYS = ("boundsType", "boundsAlignment", "boundsWidth", "boundsHeight")


def camera_input(device: str | None, platform: str = sys.platform) -> tuple[str, dict]:
    """(OBS input kind, its settings) that capture AvatarCam's virtual camera on this OS."""
    if platform.startswith("win"):
        return "dshow_input", {"video_device_id": f"{device or 'OBS Virtual Camera'}:"}
    if platform == "darwin":
        return "av_capture_input_v2", {"device_name": device or "OBS Virtual Camera"}
    return "v4l2_input", {"device_id": device or "/dev/video10"}


def obs_colour(colour: Color) -> int:
    """OBS stores colours as 0xAABBGGRR."""
    r, g, b = colour
    return 0xFF000000 | (b << 16) | (g << 8) | r


@dataclass
class KeyedSource:
    """What to put in OBS: where, capturing what, keyed on which colour."""

    scene: str                                   # the scene the keyed avatar goes into
    key: Color                                   # the avatar's green-screen colour
    input_kind: str = ""                         # "" : camera_input(device) for this OS
    input_settings: dict = field(default_factory=dict)
    device: str | None = None                    # the virtual camera (settings camera.device)
    input_name: str = "AvatarCam (keyed)"
    filter_name: str = "AvatarCam chroma key"
    filter_kind: str = FILTER_KIND
    tuning: KeyTuning = field(default_factory=KeyTuning)
    layout_file: Path | None = None              # where the user's position and size are kept

    def source(self) -> tuple[str, dict]:
        return (self.input_kind, self.input_settings) if self.input_kind else camera_input(self.device)

    def same_source(self, other: "KeyedSource") -> bool:
        """Whether `other` is the same OBS input in the same scene (it may differ in its key colour)."""
        return (self.scene, self.input_name, self.filter_name, self.source()) == \
            (other.scene, other.input_name, other.filter_name, other.source())

    def filter_settings(self) -> dict:
        t = self.tuning
        return {"key_color_type": "custom", "key_color": obs_colour(self.key), "similarity": t.similarity,
                "smoothness": t.smoothness, "spill": t.spill}


class KeyedCamera:
    """`place` the keyed source (create or update), `remove` it and remember where the user left it."""

    def __init__(self, cfg: KeyedSource, warn: Callable[[Failed, str], None]):
        self.cfg, self._warn = cfg, warn
        self.placed = False

    def place(self, link: Link, keep_place: bool = False) -> None:
        """Create or update the source and its filter; `keep_place`: leave an existing item where it is."""
        cfg = self.cfg
        self.placed = True
        kind, settings = cfg.source()
        try:
            item, made = self._input_in_scene(link, kind, settings)
        except Failed as e:
            if e.code == 600 and cfg.scene in str(e.comment):
                self._warn(e, f"The OBS scene {cfg.scene!r} no longer exists: pick a scene in AvatarCam's OBS "
                              "settings (the avatar still streams to the camera)")
            else:
                self._warn(e, f"OBS could not add the camera source ({kind}); add it by hand")
            return
        if made or not keep_place:
            self._apply_layout(link, item)
        try:
            self._filter(link)
        except Failed as e:
            self._warn(e, f"This OBS has no {cfg.filter_kind!r} filter (OBS 27+ has it): key the source "
                          f"{cfg.input_name!r} by hand with a Chroma Key on {cfg.key}")

    def rekey(self, link: Link, cfg: KeyedSource) -> None:
        """Mid-stream, another green-screen avatar: the filter takes its key colour. The source keeps
        the place the user gave it during this stream (it is re-created, at the saved place, only if
        it went missing from the scene)."""
        self.cfg = cfg
        self.place(link, keep_place=True)
        log.info("OBS: %r now keyed on %s", cfg.input_name, cfg.key)

    def remove(self, link: Link) -> None:
        cfg = self.cfg
        self.placed = False
        try:
            item = link.call(obsreq.GetSceneItemId(sceneName=cfg.scene, sourceName=cfg.input_name)).datain["sceneItemId"]
            self._save_layout(link.call(obsreq.GetSceneItemTransform(sceneName=cfg.scene, sceneItemId=item))
                              .datain["sceneItemTransform"])
            link.call(obsreq.RemoveSceneItem(sceneName=cfg.scene, sceneItemId=item))   # at once, unlike RemoveInput
        except Failed:
            pass   # the scene or the item is gone already: nothing to remember
        try:
            link.call(obsreq.RemoveInput(inputName=cfg.input_name))
            log.info("OBS: removed %r", cfg.input_name)
        except Failed as e:
            if e.code != 600:   # 600: already gone
                self._warn(e, f"Remove the source {cfg.input_name!r} in OBS by hand")
            return
        self._wait_gone(link)

    def _wait_gone(self, link: Link, timeout_s: float = 3.0) -> None:
        """OBS frees a removed input a little later; creating it again before that would find the
        dying input and fail to put it in a scene (700), so wait until its name is free."""
        deadline = time.monotonic() + timeout_s
        while self._input_exists(link) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _input_exists(self, link: Link) -> bool:
        try:
            link.call(obsreq.GetInputSettings(inputName=self.cfg.input_name))
        except Failed:
            return False
        return True

    def _input_in_scene(self, link: Link, kind: str, settings: dict) -> tuple[int, bool]:
        """(the scene item of our input in the scene, whether the item is new): the input updated, or created."""
        cfg = self.cfg
        if not self._input_exists(link):
            made = link.call(obsreq.CreateInput(sceneName=cfg.scene, inputName=cfg.input_name, inputKind=kind,
                                                inputSettings=settings, sceneItemEnabled=True))
            log.info("OBS: created %r (%s) in scene %r", cfg.input_name, kind, cfg.scene)
            return int(made.datain["sceneItemId"]), True
        link.call(obsreq.SetInputSettings(inputName=cfg.input_name, inputSettings=settings, overlay=True))
        try:
            return int(link.call(obsreq.GetSceneItemId(sceneName=cfg.scene, sourceName=cfg.input_name))
                       .datain["sceneItemId"]), False
        except Failed as e:
            if e.code != 600:       # 600: the input exists but is not in this scene (OBS 29 does not name it)
                raise
        return int(link.call(obsreq.CreateSceneItem(sceneName=cfg.scene, sourceName=cfg.input_name,
                                                    sceneItemEnabled=True)).datain["sceneItemId"]), True

    def _filter(self, link: Link) -> None:
        cfg = self.cfg
        try:
            link.call(obsreq.GetSourceFilter(sourceName=cfg.input_name, filterName=cfg.filter_name))
        except Failed:
            link.call(obsreq.CreateSourceFilter(sourceName=cfg.input_name, filterName=cfg.filter_name,
                                                filterKind=cfg.filter_kind, filterSettings=cfg.filter_settings()))
            return
        link.call(obsreq.SetSourceFilterSettings(sourceName=cfg.input_name, filterName=cfg.filter_name,
                                                 filterSettings=cfg.filter_settings(), overlay=True))

    # -- where the user left it ---------------------------------------------------------------------
    def _save_layout(self, transform: dict) -> None:
        path = self.cfg.layout_file
        if path is None:
            return
        keep = {k: transform[k] for k in _LAYOUT_KEYS if k in transform}
        if transform.get("boundsType", "OBS_BOUNDS_NONE") != "OBS_BOUNDS_NONE":
            keep.update({k: transform[k] for k in _BOUNDS_KEYS if k in transform})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(keep), encoding="utf-8")
        except OSError as e:
            log.warning("could not keep the keyed source's position in %s: %s", path, e)

    def _apply_layout(self, link: Link, item: int) -> None:
        path = self.cfg.layout_file
        if path is None or not path.is_file():
            return
        try:
            layout = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            log.warning("ignoring the saved position of the keyed source (%s): %s", path, e)
            return
        try:
            link.call(obsreq.SetSceneItemTransform(sceneName=self.cfg.scene, sceneItemId=item,
                                                   sceneItemTransform=layout))
        except Failed as e:
            self._warn(e, "Place the keyed avatar in the scene by hand")


class KeyedFollower:
    """The keyed source OBS has, kept matching what the stream wants: placed at start and on every
    reconnect, re-keyed or taken out when the avatar is switched, taken out when the stream stops."""

    def __init__(self, warn: Callable[[Failed, str], None]):
        self._warn_to = warn
        self._told: set[str] = set()             # advice given on this connection: said once, not per switch
        self.camera: KeyedCamera | None = None   # the keyed source OBS was given last (None: none there)

    def _warn(self, e: Failed, what_to_do: str) -> None:
        if what_to_do not in self._told:
            self._told.add(what_to_do)
            self._warn_to(e, what_to_do)

    def follow(self, link: Link, want: KeyedSource | None, fresh: bool) -> None:
        """`fresh`: the stream's state is being (re)applied on this connection (start, reconnect), so
        the source is placed even when nothing changed."""
        cur = self.camera
        if fresh:
            self._told.clear()
        if not fresh and (cur.cfg if cur is not None else None) == want:
            return
        if cur is not None and cur.placed and (want is None or not cur.cfg.same_source(want)):
            cur.remove(link)              # not keyed any more, or keyed elsewhere: the old one goes
            cur = self.camera = None
        if want is None:
            return
        if cur is not None and cur.placed and not fresh:
            cur.rekey(link, want)         # same source, another key colour: it stays where the user put it
            return
        if cur is None:
            cur = self.camera = KeyedCamera(want, self._warn)
        cur.cfg = want
        cur.place(link)

    def take_out(self, link: Link) -> None:
        if self.camera is not None and self.camera.placed:
            self.camera.remove(link)

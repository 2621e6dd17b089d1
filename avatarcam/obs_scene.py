"""The stream's scene in OBS: switch to it and show the avatar's source on start, put both back after.

Why remember: OBS belongs to the user; whatever scene was live and whether the source was hidden
before the stream is exactly what the stream leaves behind.
"""
from __future__ import annotations

import logging
from typing import Callable

from .obs_link import Failed, Link, obsreq

log = logging.getLogger("avatarcam.obs")


class SceneSwitch:
    """Scene and source visibility: `show` on start (again after a reconnect), `hide` on restore."""

    def __init__(self, scene: str | None, source: str | None, warn: Callable[[Failed, str], None]):
        self.scene, self.source, self._warn = scene, source, warn
        self.shown = False
        self._saved_scene: str | None = None
        self._saved_item: tuple[str, int, bool] | None = None

    def show(self, link: Link) -> None:
        first = not self.shown
        self.shown = True
        current = link.call(obsreq.GetCurrentProgramScene()).datain.get("currentProgramSceneName")
        if first:
            self._saved_scene = current
        if self.source:
            scene = self.scene or current
            try:
                item = link.call(obsreq.GetSceneItemId(sceneName=scene, sourceName=self.source)).datain["sceneItemId"]
                was = link.call(obsreq.GetSceneItemEnabled(sceneName=scene, sceneItemId=item)
                                ).datain["sceneItemEnabled"]
                if first:
                    self._saved_item = (scene, item, bool(was))
                link.call(obsreq.SetSceneItemEnabled(sceneName=scene, sceneItemId=item, sceneItemEnabled=True))
            except Failed as e:
                self._warn(e, f"Add the source {self.source!r} to the OBS scene {scene!r}, "
                              "or clear the source in AvatarCam's OBS settings")
        if self.scene and self.scene != current:
            try:
                link.call(obsreq.SetCurrentProgramScene(sceneName=self.scene))
                log.info("OBS: switched to scene %r (was %r)", self.scene, current)
            except Failed as e:
                self._warn(e, f"Create the scene {self.scene!r} in OBS "
                              "or pick an existing one in AvatarCam's OBS settings")

    def hide(self, link: Link) -> None:
        scene, item = self._saved_scene, self._saved_item
        self.shown, self._saved_scene, self._saved_item = False, None, None
        if self.scene and scene and scene != self.scene:
            try:
                link.call(obsreq.SetCurrentProgramScene(sceneName=scene))
                log.info("OBS: restored scene %r", scene)
            except Failed as e:
                self._warn(e, f"The scene {scene!r} from before the stream is gone; pick a scene in OBS by hand")
        if item is not None and not item[2]:
            try:
                link.call(obsreq.SetSceneItemEnabled(sceneName=item[0], sceneItemId=item[1], sceneItemEnabled=False))
            except Failed as e:
                self._warn(e, f"Hide {self.source!r} in OBS by hand")

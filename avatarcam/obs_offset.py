"""The mic's audio sync offset in OBS: delayed by the avatar's latency while streaming, put back after.

Why: on stream the voice must wait for the lips; the value the user had is restored at the end.
"""
from __future__ import annotations

import logging
import math
from typing import Callable

from .obs_link import Failed, Link, obsreq

log = logging.getLogger("avatarcam.obs")


SYNC_OFFSET_RANGE_MS = (-950, 20000)  # what SetInputAudioSyncOffset accepts


def offset_in_range(ms: float) -> int | None:
    """A latency in ms as OBS takes it: whole, inside its range (said once when clamped); None if not a number."""
    if not math.isfinite(ms):
        log.warning("OBS sync offset %r ms is not a number; ignored", ms)
        return None
    lo, hi = SYNC_OFFSET_RANGE_MS
    value = int(round(ms))
    if not lo <= value <= hi:
        log.warning("OBS sync offset %d ms is outside OBS's range %d..%d ms; using the nearest end", value, lo, hi)
        value = min(max(value, lo), hi)
    return value


class MicOffset:
    """`apply(ms)` (the first call remembers OBS's own value), `put_back` restores it."""

    def __init__(self, mic_input: str | None, warn: Callable[[Failed, str], None]):
        self.name, self._warn = mic_input, warn
        self.applied: int | None = None
        self.saved: int | None = None

    def apply(self, link: Link, ms: int) -> None:
        self.applied = ms
        try:
            if self.saved is None:
                self.saved = int(link.call(obsreq.GetInputAudioSyncOffset(inputName=self.name))
                                 .datain["inputAudioSyncOffset"])
            link.call(obsreq.SetInputAudioSyncOffset(inputName=self.name, inputAudioSyncOffset=ms))
            log.debug("OBS: %r sync offset = %d ms", self.name, ms)
        except Failed as e:
            self._warn(e, f"Pick an OBS input with audio (a microphone) as the mic input instead of {self.name!r}")

    def put_back(self, link: Link) -> None:
        saved, self.saved, self.applied = self.saved, None, None
        try:
            link.call(obsreq.SetInputAudioSyncOffset(inputName=self.name, inputAudioSyncOffset=saved))
        except Failed as e:
            self._warn(e, f"Reset the sync offset of {self.name!r} by hand (Advanced Audio Properties)")

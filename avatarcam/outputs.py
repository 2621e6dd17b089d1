"""The session's outputs as sinks (`send(frame)`, `close()`): the recorder and the preview.

Why: the camera was a sink, the recorder was fed by hand from the engine thread and the preview was
an event; now all three are `Sink`s. The recorder takes every generated frame once, in order, with
the audio the engine heard (so the file stays in sync whatever the pacer does); the camera and the
preview take the paced frames.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import AvatarCamError
from .sinks import Sink, VideoFile

log = logging.getLogger(__name__)


@dataclass
class Recording:
    """What happened to the mp4: frames and seconds kept, and why it stopped early (if it did)."""

    path: Path
    frames: int = 0
    seconds: float = 0.0
    written: bool = False
    stopped: str | None = None


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, AvatarCamError) else f"{type(exc).__name__}: {exc}"


class PreviewSink(Sink):
    """Hands each shown frame to a callback (the session emits it as a "frame" event)."""

    name = "preview"

    def __init__(self, show: Callable[[np.ndarray], None]):
        self.show = show

    def send(self, frame: np.ndarray) -> None:
        self.show(frame)


class RecorderSink(Sink):
    """The mp4: when writing fails (a full disk...) it keeps what it has, says so once, and the stream goes on."""

    name = "recorder"

    def __init__(self, path: Path, width: int, height: int, fps: float, warn: Callable[[str], None]):
        self.file: VideoFile | None = VideoFile(path, width, height, fps)
        self.recording = Recording(Path(path))
        self.warn = warn

    def open(self) -> "RecorderSink":
        self.file.open()
        return self

    def send(self, frame: np.ndarray) -> None:
        self._feed(lambda f: f.send(frame))

    def send_audio(self, block: np.ndarray) -> None:
        self._feed(lambda f: f.send_audio(block))

    def close(self) -> None:
        """Finish the file so it plays (audio cut to its frames); also after an engine error."""
        self._finish()

    def _feed(self, call: Callable[[VideoFile], None]) -> None:
        if self.file is None:
            return
        try:
            call(self.file)
        except Exception as exc:
            self._finish(exc)

    def _finish(self, failure: BaseException | None = None) -> None:
        rec, self.file = self.file, None
        if rec is None:
            return
        info = self.recording
        if failure is not None:
            log.debug("recording failed", exc_info=failure)
            info.stopped = _reason(failure)
        try:
            rec.close()
        except Exception as exc:
            log.debug("closing the recording failed", exc_info=exc)
            info.stopped = info.stopped or _reason(exc)
            info.frames = 0
            self.warn(f"recording to {info.path} failed and could not be finished ({info.stopped}); "
                      "free some space or record elsewhere")
            return
        info.frames = rec.frames_sent
        info.seconds = rec.duration_s
        info.written = rec.frames_sent > 0
        if failure is not None:
            kept = f"kept the first {info.seconds:.1f} s" if info.written else "nothing was written"
            self.warn(f"recording to {info.path} stopped ({info.stopped}); {kept}; the stream goes on")

"""The engine thread: queued audio -> stream.push_audio -> frames, each handed on exactly once, in order.

Why the recorder is fed here and not by the pacer: the file must hold every generated frame with
the audio the engine heard, whatever the pacer had to drop or repeat for the live outputs.
"""
from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Callable

import numpy as np

from .capture import END
from .sinks import Sink

if TYPE_CHECKING:
    from engine.toon.identity import Identity

FrameOut = Callable[[int, np.ndarray, int], None]   # (frame index, frame, audio samples skipped before it)


class EngineWorker:
    """Runs the stream on the capture's audio; `switch(image)` restarts it on another avatar between blocks."""

    def __init__(self, stream, audio_q: queue.Queue, reference: np.ndarray, deliver: FrameOut,
                 recorder: Sink | None = None):
        self.stream, self.audio_q, self.deliver, self.recorder = stream, audio_q, deliver, recorder
        self.reference = reference          # the avatar image as the model sees it
        self.frames = 0                     # frames generated
        self.samples = 0                    # audio samples the engine has been given
        self.skip = 0                       # audio dropped before the engine's current position (samples)
        self._pending: tuple[np.ndarray, Identity | None] | None = None

    def switch(self, image: np.ndarray, identity: Identity | None = None) -> None:
        self._pending = (image, identity)

    def run(self, stop: threading.Event, frames_done: Callable[[], None]) -> None:
        try:
            while True:
                try:
                    item = self.audio_q.get(timeout=0.2)
                except queue.Empty:
                    if stop.is_set():
                        break
                    continue
                if self._pending is not None:
                    (image, identity), self._pending = self._pending, None
                    self.reference = self.stream.start(image, identity=identity)
                if item is END or stop.is_set():
                    break
                start, block = item
                self.skip = start - self.samples
                self.samples += len(block)
                if self.recorder is not None:
                    self.recorder.send_audio(block)          # only what the engine hears: in sync
                self._hand_on(self.stream.push_audio(block))
            # end of input, Ctrl-C or a signal: turn the audio already heard into frames (a few steps)
            self._hand_on(self.stream.flush())
        finally:
            frames_done()

    def _hand_on(self, frames: list[np.ndarray]) -> None:
        for frame in frames:
            index = self.frames
            self.frames += 1
            if self.recorder is not None:
                self.recorder.send(frame)
            self.deliver(index, frame, self.skip)

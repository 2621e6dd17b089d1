"""The pacer thread: frames at a steady output rate for the live sinks (camera, preview).

Why: the engine makes frames in bursts of a block; a camera wants one every 1/fps seconds. The
pacer repeats the last frame when the engine is late (never a frozen camera) and drops the oldest
when it ran ahead (bounded latency).
"""
from __future__ import annotations

import queue
import threading
import time

import numpy as np

from .capture import END
from .sinks import Sink
from .stats import SessionStats, Timing


class Pacer:
    """Shows queued (index, frame, skip) items on `sinks` at `out_fps`; the model makes `model_fps`."""

    def __init__(self, sinks: list[Sink], counters: SessionStats, timing: Timing, *, out_fps: float,
                 model_fps: float, max_buffer: int, first_frame: np.ndarray):
        self.frame_q: queue.Queue = queue.Queue()
        self.sinks, self.counters, self.timing = sinks, counters, timing
        self.out_fps, self.model_fps, self.max_buffer = out_fps, model_fps, max_buffer
        self.last = first_frame

    def put(self, index: int, frame: np.ndarray, skip: int) -> None:
        self.frame_q.put((index, frame, skip))

    def end(self) -> None:
        self.frame_q.put(END)

    def run(self, stop: threading.Event) -> None:
        """A model frame is due every model_fps/out_fps ticks, so 25 fps frames on a 30 fps camera repeat
        every fifth tick (rate conversion, not counted); a frame that is due but not made yet is a repeat
        (engine late)."""
        period = 1.0 / self.out_fps
        per_tick = self.model_fps / self.out_fps
        next_t = time.monotonic()
        started = finished = False
        owed = 0.0
        while not stop.is_set() and not finished:
            finished = self._drop_backlog()
            owed += per_tick
            took = None
            while owed >= 1.0 and not finished:
                try:
                    item = self.frame_q.get_nowait()
                except queue.Empty:
                    break
                if item is END:
                    finished = True
                    break
                owed -= 1.0
                took = item
            if finished and took is None:
                break
            if took is not None:
                index, self.last, skip = took
                started = True
                self.timing.note_latency(index, skip)
            elif owed >= 1.0:
                if started:
                    self.counters.repeated_frames += 1   # engine late: hold the last frame, never freeze
                owed = min(owed, 1.0)                    # no catching up in a burst later
            self._show(self.last)
            next_t += period
            delay = next_t - time.monotonic()
            if delay < -period:                    # fell far behind (machine busy): resync the clock
                next_t = time.monotonic()
            else:
                time.sleep(max(0.0, delay))

    def _drop_backlog(self) -> bool:
        """Drop the oldest frames when the engine ran ahead (keeps latency bounded); True at the end."""
        while self.frame_q.qsize() > self.max_buffer:
            if self.frame_q.get_nowait() is END:
                return True
            self.counters.dropped_frames += 1
        return False

    def _show(self, frame: np.ndarray) -> None:
        for sink in self.sinks:
            sink.send(frame)
        self.timing.note_shown()

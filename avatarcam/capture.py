"""The capture thread: audio source -> the engine's queue, stamped with the wall time it was heard.

Why a bounded queue: on live input a slow machine must cost dropped audio (a skipped syllable),
never seconds of lip lag, so when the engine falls behind the oldest waiting block is dropped.
"""
from __future__ import annotations

import queue
import threading
import time

import numpy as np

from engine.config import SAMPLE_RATE

from .noise_gate import NoiseGate
from .stats import AudioClock, SessionStats

AUDIO_BACKLOG_S = 0.5   # most live audio that may wait for the engine; older audio is dropped beyond it
END = object()          # queued after the last block (end of a file, --duration, stop)


class Capture:
    """Reads `source` until it ends, `limit` samples, or stop; a file is paced like a mic when asked."""

    def __init__(self, source, counters: SessionStats, *, live: bool, pace_file: bool,
                 limit: int | None = None, delayed_mic=None, gate: NoiseGate | None = None):
        self.source, self.counters = source, counters
        self.gate = gate   # what the avatar hears only; None: off (see set_gate)
        self.pace_file, self.limit, self.delayed_mic = pace_file, limit, delayed_mic
        backlog = max(2, -(-int(AUDIO_BACKLOG_S * SAMPLE_RATE) // source.block_size))
        self.audio_q: queue.Queue = queue.Queue(maxsize=backlog if live else 0)
        self.clock = AudioClock()
        self.muted = False

    def run(self, stop: threading.Event) -> None:
        t0 = time.monotonic()
        clock, limit = self.clock, self.limit
        while not stop.is_set():
            block = self.source.read(timeout=0.2)
            if block is None:
                if self.source.ended:
                    break
                continue
            if limit is not None and clock.samples + len(block) > limit:
                block = block[: max(0, limit - clock.samples)]
            if self.pace_file:  # pace a file like a microphone
                due = t0 + (clock.samples + len(block)) / SAMPLE_RATE
                time.sleep(max(0.0, due - time.monotonic()))
            if self.muted:
                block = np.zeros_like(block)
            now = time.monotonic()
            clock.add(len(block), now)
            if self.delayed_mic is not None:
                self.delayed_mic.push(block, now - len(block) / SAMPLE_RATE)
            gate = self.gate
            if gate is not None:
                block = gate(block)
            self._put(clock.samples - len(block), block)
            if limit is not None and clock.samples >= limit:
                break
        self.audio_q.put(END)

    def set_gate(self, threshold_db: float | None) -> None:
        """Move the noise gate's threshold while streaming (None: off); the capture thread sees it next block."""
        if threshold_db is None:
            self.gate = None
        elif self.gate is None:
            self.gate = NoiseGate(threshold_db)
        else:
            self.gate.threshold_db = threshold_db

    def _put(self, start: int, block: np.ndarray) -> None:
        """Queue a block captured at stream sample `start`; when full, drop the oldest waiting block."""
        try:
            self.audio_q.put_nowait((start, block))
        except queue.Full:  # engine far behind the mic: drop the oldest audio, keep the newest
            try:
                dropped = self.audio_q.get_nowait()
                self.counters.dropped_audio_blocks += 1
                if dropped is not END:
                    self.counters.dropped_audio_s += len(dropped[1]) / SAMPLE_RATE
            except queue.Empty:
                pass
            self.audio_q.put_nowait((start, block))

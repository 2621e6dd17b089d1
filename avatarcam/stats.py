"""What a live stream reports: the counters the threads keep, and the snapshot `Session.stats()` gives.

Why a module of its own: the capture, engine and pacer threads each bump a few counters; keeping
them in one small object (not in the session's attributes) lets each part take exactly the counters
it writes, and the snapshot reads them in one place.
"""
from __future__ import annotations

import collections
import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from engine.config import SAMPLE_RATE

BEHIND_AFTER_S = 2.0    # the engine below real time this long (live input): say so, with the fix
BEHIND_RATE = 0.95      # audio the engine takes in per second of wall time, below which it is behind
LATENCIES_KEPT = 200    # measured latencies in the median
RECENT_STEPS = 200      # step / decode times in the percentiles


@dataclass
class SessionStats:
    state: str = "idle"
    elapsed_s: float = 0.0
    frames_generated: int = 0
    frames_shown: int = 0
    output_fps: float = 0.0
    step_ms_p50: float = 0.0
    step_ms_p95: float = 0.0
    decode_ms_p50: float = 0.0
    audio_queue: int = 0
    frame_queue: int = 0
    dropped_frames: int = 0
    repeated_frames: int = 0
    dropped_audio_blocks: int = 0
    dropped_audio_s: float = 0.0            # audio the engine never heard (it fell behind real time)
    latency_s: float | None = None          # measured audio -> shown frame
    expected_latency_s: float = 0.0         # structural: block + look-ahead + features
    mic_faults: int = 0
    sink_errors: int = 0
    obs_status: str = "off"
    realtime_factor: float = 0.0            # audio seconds processed per wall second
    audio_s: float = 0.0                    # audio consumed so far
    fps: float = 0.0                        # the model's frame rate
    engine: str = ""                        # "cpu float32 eager" (what actually runs; a failed compile says eager)
    behind: str = ""                        # set while the engine has been behind real time for seconds: why + fix

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else 0.0


class AudioClock:
    """Maps stream sample positions to the wall time they were captured (for measured latency)."""

    def __init__(self):
        self._marks: collections.deque = collections.deque(maxlen=4096)
        self.samples = 0

    def add(self, n: int, t_read: float) -> None:
        self.samples += n
        self._marks.append((self.samples, t_read))

    def time_of(self, sample: int) -> float | None:
        """Wall time at which `sample` had been captured (it arrived in the block read at that time)."""
        for end, t in self._marks:
            if end >= sample:
                return t
        return None


class Timing:
    """Frames shown and measured latencies: the pacer (or the engine, with no live output) writes them."""

    def __init__(self, clock: AudioClock, fps: float, measure: bool):
        self.clock, self.fps, self.measure = clock, fps, measure
        self.shown = 0
        self.shown_times: collections.deque = collections.deque(maxlen=int(fps * 3))
        self.latencies: collections.deque = collections.deque(maxlen=LATENCIES_KEPT)

    def note_shown(self) -> None:
        self.shown += 1
        self.shown_times.append(time.monotonic())

    def note_latency(self, index: int, skip: int = 0) -> None:
        """Wall time from capturing the audio of frame `index` to showing it; `skip`: audio dropped before it."""
        if not self.measure:
            return
        mid_sample = int((index + 0.5) * SAMPLE_RATE / self.fps) + skip
        t_audio = self.clock.time_of(mid_sample)
        if t_audio is not None:
            self.latencies.append(time.monotonic() - t_audio)

    def output_fps(self) -> float:
        times = list(self.shown_times)
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else 0.0

    def latency_s(self) -> float | None:
        return float(np.median(self.latencies)) if self.latencies else None


def fill_stream_stats(st: SessionStats, stream, timing: Timing, elapsed_s: float) -> None:
    """The engine's side of a snapshot: step and decode times, audio heard, latency."""
    st.elapsed_s = elapsed_s
    st.frames_shown = timing.shown
    st.output_fps = timing.output_fps()
    recent = stream.step_ms[-RECENT_STEPS:]
    st.step_ms_p50, st.step_ms_p95 = percentile(recent, 50), percentile(recent, 95)
    st.decode_ms_p50 = percentile(stream.decode_ms[-RECENT_STEPS:], 50)
    st.latency_s = timing.latency_s()
    st.expected_latency_s = stream.expected_latency_s
    st.audio_s = timing.clock.samples / SAMPLE_RATE
    st.fps = stream.fps
    if elapsed_s > 0:
        st.realtime_factor = st.audio_s / elapsed_s


class EnginePace:
    """Whether the engine keeps up with live audio: its intake rate over the last BEHIND_AFTER_S seconds."""

    def __init__(self, after_s: float = BEHIND_AFTER_S, rate: float = BEHIND_RATE):
        self.after_s, self.threshold = after_s, rate
        self.marks: collections.deque = collections.deque()
        self.behind = False
        self.rate = 1.0
        self.slow_since: float | None = None

    def update(self, now: float, heard_s: float) -> str | None:
        """Add a sample (wall time, audio seconds the engine took in); returns "behind"/"recovered" on a change."""
        self.marks.append((now, heard_s))
        while len(self.marks) > 2 and now - self.marks[1][0] >= self.after_s:
            self.marks.popleft()
        t0, h0 = self.marks[0]
        if now - t0 < self.after_s:
            return None
        self.rate = (heard_s - h0) / (now - t0)
        if self.rate >= self.threshold:
            self.slow_since = None
        elif self.slow_since is None:
            self.slow_since = now
        # behind: the window's rate stayed low for half a window more (brief dips are not reported)
        if not self.behind and self.slow_since is not None and now - self.slow_since >= self.after_s / 2:
            self.behind = True
            return "behind"
        if self.behind and self.rate >= 0.99:
            self.behind = False
            return "recovered"
        return None

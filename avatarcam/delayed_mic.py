"""Plays the microphone into another audio device, delayed so the voice matches the avatar's lips.

Apps without OBS (Zoom, Meet) take the camera and the mic separately; the avatar video lags the voice
by the engine latency, so the voice is sent through a virtual cable (PulseAudio null sink, VB-Cable,
BlackHole) late by the same amount. The delay is kept against the clock, not by counting samples:
each block carries its capture time, and the output callback plays the sample captured exactly
``delay_s`` before the moment its buffer reaches the speaker (PortAudio's DAC time), so stream
latencies and live changes of ``delay_s`` are accounted for.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from avatarcam.audio import AudioDevice, close_stream, open_stream, _sounddevice, resolve_device
from avatarcam.errors import ConfigError
from avatarcam.resample import PolyphaseResampler
from engine.config import SAMPLE_RATE

log = logging.getLogger(__name__)

MAX_DELAY_S = 10.0


class DelayedMicOutput:
    """``with DelayedMicOutput(device, delay_s) as out: out.push(block)`` for every mic block.

    Missing audio (underrun: the mic stalled or the delay was just lowered) plays as silence; the
    ``underruns`` counter says how often. ``muted`` silences the output without stopping the stream.
    """

    def __init__(self, device: int | str | None = None, delay_s: float = 0.0, sample_rate: int = SAMPLE_RATE, *,
                 block_ms: float = 10, latency: float | str = 0.05, resync_s: float = 0.008,
                 close_timeout_s: float = 2.0):
        self.device = device
        self.sample_rate = int(sample_rate)
        self._delay = self._check_delay(delay_s)
        self._block_ms = block_ms
        self._latency = latency
        self._last_block_s = 0.02
        self._resync = resync_s
        self._close_timeout = close_timeout_s
        self.muted = False
        self.underruns = 0
        self.device_info: AudioDevice | None = None
        self.device_rate = self.sample_rate
        self._stream = None
        self._resampler: PolyphaseResampler | None = None
        self._ring = np.zeros(0, np.float32)
        self._lock = threading.Lock()
        self._written = 0  # absolute index (device rate) of the next sample pushed
        self._t0: float | None = None  # monotonic time of absolute sample 0
        self._read_idx: int | None = None
        self._jump = True
        self.status_errors = 0
        self.effective_delay_s = self._delay

    # --- settings ----------------------------------------------------------------------------
    @staticmethod
    def _check_delay(delay_s: float) -> float:
        d = float(delay_s)
        if not 0.0 <= d <= MAX_DELAY_S:
            raise ConfigError(f"audio delay must be within 0..{MAX_DELAY_S} s, got {delay_s}")
        return d

    @property
    def delay_s(self) -> float:
        return self._delay

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        """Change the delay live (e.g. to the measured engine latency); takes effect within one buffer."""
        self._delay = self._check_delay(value)
        self._jump = True

    def mute(self, on: bool = True) -> None:
        self.muted = bool(on)

    # --- open / close -------------------------------------------------------------------------
    def open(self) -> "DelayedMicOutput":
        sd = _sounddevice()
        self.device_info = resolve_device(self.device, "output")
        stream, rate = open_stream(lambda r: self._make_stream(sd, r), self.device_info, self.sample_rate,
                                   "Audio output")
        self.device_rate = rate
        self._resampler = None if rate == self.sample_rate else PolyphaseResampler(self.sample_rate, rate)
        self._ring = np.zeros(int((MAX_DELAY_S + 2.0) * rate), np.float32)
        self._written, self._t0, self._read_idx, self._jump = 0, None, None, True
        self._stream = stream
        stream.start()
        log.info("delayed mic output %r open at %d Hz, delay %.3f s", self.device_info.name, rate, self._delay)
        return self

    def _make_stream(self, sd, rate: int):
        return sd.OutputStream(samplerate=rate, channels=1, dtype="float32", device=self.device_info.index,
                               blocksize=int(round(rate * self._block_ms / 1000)), callback=self._callback,
                               latency=self._latency)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            close_stream(stream, self._close_timeout)

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- input --------------------------------------------------------------------------------
    def push(self, block: np.ndarray, t: float | None = None) -> None:
        """Queue one mic block. ``t`` is the ``time.monotonic()`` at which its first sample was captured;
        by default the block is taken to have just been captured (it ends now)."""
        block = np.asarray(block, np.float32).reshape(-1)
        if t is None:
            t = time.monotonic() - len(block) / self.sample_rate
        self._last_block_s = len(block) / self.sample_rate
        if self._resampler is not None:
            block = self._resampler.process(block)
        rate, cap = self.device_rate, len(self._ring)
        with self._lock:
            offset = t - self._written / rate  # when sample 0 would have been captured, judging by this block
            if self._t0 is None or offset < self._t0 or offset - self._t0 > 0.1:
                # earliest arrival is the truest (delivery only ever adds jitter); a big jump is a gap
                self._t0 = offset
            else:
                self._t0 += 0.01 * (offset - self._t0)  # follow slow clock drift
            start = self._written % cap
            n = min(len(block), cap)
            first = min(n, cap - start)
            self._ring[start:start + first] = block[:first]
            self._ring[:n - first] = block[first:n]
            self._written += n

    # --- output callback (PortAudio thread) ---------------------------------------------------
    def _callback(self, outdata, frames, time_info, status) -> None:
        if status:
            self.status_errors += 1
        now = time.monotonic()
        lead = time_info.outputBufferDacTime - time_info.currentTime
        if not 0.0 <= lead < 2.0:  # host API without timing information
            lead = self._stream.latency if self._stream is not None else 0.0
        rate, cap = self.device_rate, len(self._ring)
        with self._lock:
            t0, written = self._t0, self._written
            if t0 is None:
                outdata.fill(0)
                return
            # a sample cannot play before it has arrived: below that floor, play as early as possible
            delay = max(self._delay, lead + self._last_block_s + self._resync)
            self.effective_delay_s = delay
            target = int(round((now + lead - delay - t0) * rate))
            idx = self._read_idx
            if idx is None or self._jump or abs(target - idx) > self._resync * rate:
                idx = target
                self._jump = False
            lo = max(idx, written - cap + frames)
            hi = min(idx + frames, written)
            outdata.fill(0)
            if hi > lo and not self.muted:
                a, b = lo % cap, (hi - 1) % cap + 1
                dst = outdata[lo - idx:hi - idx, 0]
                if a < b:
                    dst[:] = self._ring[a:b]
                else:
                    k = cap - a
                    dst[:k] = self._ring[a:]
                    dst[k:] = self._ring[:b]
            if idx + frames > written and written > 0:
                self.underruns += 1
            self._read_idx = idx + frames

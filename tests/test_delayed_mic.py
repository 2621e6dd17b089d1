"""The delayed microphone output, measured for real: it plays into a PulseAudio null sink ("out"),
and the sink's monitor is captured with PortAudio timestamps; cross-correlation finds when a chirp
pushed at a known capture time came out."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from avatarcam.delayed_mic import DelayedMicOutput
from avatarcam.errors import ConfigError, DeviceError
from tests.fixtures_pulse import chirp, ncc_max, pulse_module  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(60)
SR = 16000
BLOCK = 320


class MonitorCapture:
    """Records the null sink's monitor with the monotonic time of every block's first sample."""

    def __init__(self):
        import sounddevice as sd

        self.blocks: list[tuple[float, np.ndarray]] = []
        os.environ["PULSE_SOURCE"] = "out.monitor"  # read by ALSA's pulse plugin when the stream opens
        try:
            self.stream = sd.InputStream(samplerate=SR, channels=1, dtype="float32", device="pulse",
                                         blocksize=160, callback=self._cb, latency="low")
        finally:
            os.environ.pop("PULSE_SOURCE", None)
        self.stream.start()

    def _cb(self, data, frames, ti, status):
        now = time.monotonic()
        self.blocks.append((now - (ti.currentTime - ti.inputBufferAdcTime), data[:, 0].copy()))

    def samples(self) -> int:
        return sum(len(b) for _, b in self.blocks)

    def find(self, ref: np.ndarray) -> tuple[float, float]:
        """(score, monotonic time) of the best match of ``ref`` in what was captured."""
        data = np.concatenate([b for _, b in self.blocks])
        times = np.concatenate([t + np.arange(len(b)) / SR for t, b in self.blocks])
        score, lag = ncc_max(data, ref)
        return score, float(times[lag])

    def close(self):
        self.stream.abort()
        self.stream.close()


class Mic:
    """Pushes blocks in real time with their capture times, like the session does with a live mic."""

    def __init__(self, out: DelayedMicOutput):
        self.out, self.t0, self.n = out, time.monotonic(), 0

    def play(self, sig: np.ndarray) -> float:
        """Push ``sig``; return the capture time of its first sample."""
        first = None
        for j in range(0, len(sig), BLOCK):
            due = self.t0 + self.n / SR
            time.sleep(max(0.0, due + BLOCK / SR - time.monotonic()))  # the block is complete at its end
            first = due if first is None else first
            self.out.push(sig[j:j + BLOCK], t=due)
            self.n += BLOCK
        return first

    def silence(self, seconds: float) -> None:
        self.play(np.zeros(int(seconds * SR), np.float32))


@pytest.fixture(scope="module")
def warm_rig(pulse_module):
    """An open DelayedMicOutput into the null sink, a capture of its monitor, both warmed up: a fresh
    null-sink monitor starts with seconds of latency and PulseAudio settles it during the first second."""
    cap = MonitorCapture()
    out = DelayedMicOutput("pulse", delay_s=0.2).open()
    mic = Mic(out)
    try:
        t0 = time.monotonic()
        while cap.samples() < 0.3 * SR:
            assert time.monotonic() - t0 < 10, "the null sink monitor delivers nothing"
            mic.silence(0.1)
        mic.play(chirp(0.3))  # a warm-up chirp; its timing is not checked
        mic.silence(0.8)
        yield out, mic, cap
    finally:
        out.close()
        cap.close()


@pytest.fixture
def rig(warm_rig):
    out, mic, cap = warm_rig
    out.mute(False)
    mic.silence(0.2)  # tests that stopped pushing leave a gap: the mic resumes (and resyncs) here
    return warm_rig


def _measure(out, mic, cap, delay: float) -> tuple[float, float]:
    out.delay_s = delay
    mic.silence(0.3)
    cap.blocks.clear()
    ref = chirp(0.5)
    t_push = mic.play(ref)
    mic.silence(delay + 0.4)
    score, t_out = cap.find(ref)
    return score, t_out - t_push


def test_output_plays_the_microphone_late_by_the_set_delay(rig):
    score, measured = _measure(*rig, delay=0.25)
    print(f"set 0.250 s, measured {measured:.4f} s (ncc {score:.3f})")
    assert score > 0.9
    assert measured == pytest.approx(0.25, abs=0.020)


def test_delay_can_change_while_playing(rig):
    out, mic, cap = rig
    for delay in (0.4, 0.12):
        score, measured = _measure(out, mic, cap, delay)
        print(f"set {delay:.3f} s, measured {measured:.4f} s (ncc {score:.3f})")
        assert score > 0.9
        assert measured == pytest.approx(delay, abs=0.020)


def test_muted_output_is_silent(rig):
    out, mic, cap = rig
    out.mute(True)
    mic.silence(0.3)
    cap.blocks.clear()
    mic.play(chirp(0.5))
    mic.silence(0.6)
    data = np.concatenate([b for _, b in cap.blocks])
    assert len(data) > 0.8 * SR and np.abs(data).max() < 1e-4


def test_underrun_plays_silence_and_is_counted(rig):
    out, mic, cap = rig
    mic.play(np.full(SR // 2, 0.3, np.float32))  # a steady tone level, then the mic stops
    before = out.underruns
    time.sleep(0.2 + 0.5)  # delay + the half second of audio still queued
    cap.blocks.clear()
    time.sleep(0.4)
    data = np.concatenate([b for _, b in cap.blocks])
    assert len(data) > 0.2 * SR and np.abs(data).max() < 1e-4
    assert out.underruns > before


def test_delay_outside_the_allowed_range_is_a_config_error():
    with pytest.raises(ConfigError, match="0..10"):
        DelayedMicOutput(None, delay_s=-0.1)
    out = DelayedMicOutput(None, delay_s=0.1)
    with pytest.raises(ConfigError):
        out.delay_s = 11


def test_unknown_output_device_is_a_device_error(pulse_module):
    with pytest.raises(DeviceError, match="Audio output 'Nowhere' not found"):
        DelayedMicOutput("Nowhere", delay_s=0.1).open()

"""A private PulseAudio daemon with a virtual microphone, for tests that need real audio I/O.

The daemon runs as a foreground child (the VM's init does not reap daemonised processes) with its own
runtime dir, so tests never touch a user's sound server. PortAudio here reaches PulseAudio only
through ALSA's ``pulse`` device, which reads ``PULSE_SERVER`` when a stream opens; the fixture sets it
in ``os.environ`` and re-initialises PortAudio so the device list reflects the new server.

Import the fixtures by name in a test module: ``from tests.fixtures_pulse import pulse  # noqa: F401``.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

SR = 16000


def _wait(pred, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return
        time.sleep(0.03)
    raise TimeoutError(f"timed out waiting for {what}")


@dataclass
class PulseServer:
    """One private daemon: a pipe-source mic (``avatar_mic``) and a null sink (``out``)."""

    runtime_dir: Path
    proc: subprocess.Popen | None = None
    server: str = ""
    fifo: str = ""
    _old_env: dict = field(default_factory=dict)

    def start(self) -> "PulseServer":
        rt = self.runtime_dir
        rt.mkdir(parents=True, exist_ok=True)
        os.chmod(rt, 0o700)
        sock = rt / "native"
        self.fifo = str(rt / "mic.fifo")
        if os.path.exists(self.fifo):  # left by a killed daemon; module-pipe-source insists on creating it
            os.unlink(self.fifo)
        self.server = f"unix:{sock}"
        env = dict(os.environ, XDG_RUNTIME_DIR=str(rt), HOME=str(rt))
        env.pop("PULSE_SERVER", None)
        self.proc = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--log-target=stderr",
             f"--load=module-native-protocol-unix auth-anonymous=1 socket={sock}",
             "--load=module-null-sink sink_name=out rate=48000",
             f"--load=module-pipe-source source_name=avatar_mic file={self.fifo} "
             f"format=s16le rate={SR} channels=1"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(rt / "pulse.log", "w"))
        _wait(lambda: self.proc.poll() is not None or self.pactl("info", check=False).returncode == 0,
              10, "pulseaudio to answer")
        if self.proc.poll() is not None:
            raise RuntimeError("pulseaudio exited: " + (rt / "pulse.log").read_text()[-2000:])
        self.pactl("set-default-source", "avatar_mic")
        self.pactl("set-default-sink", "out")
        for k in ("PULSE_SERVER", "PULSE_SOURCE", "PULSE_SINK"):
            self._old_env.setdefault(k, os.environ.get(k))
        os.environ["PULSE_SERVER"] = self.server
        os.environ.pop("PULSE_SOURCE", None)
        os.environ.pop("PULSE_SINK", None)
        _refresh_portaudio()
        return self

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, PULSE_SERVER=self.server)
        return subprocess.run(["pactl", *args], env=env, capture_output=True, text=True, timeout=10,
                              check=check)

    def kill(self) -> None:
        """Stop the daemon abruptly, as a crashed sound server or an unplugged device would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for k, v in self._old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._old_env.clear()


def _refresh_portaudio() -> None:
    try:
        from avatarcam.audio import refresh_devices
    except ImportError:
        return
    refresh_devices()


class FifoFeeder(threading.Thread):
    """Writes 20 ms blocks of int16 PCM into the pipe-source FIFO in real time: silence, or queued audio.

    A pipe-source produces no frames while nobody writes, and a PortAudio stream that never got a frame
    can hang in close, so the feeder keeps writing silence until it is stopped (after the stream closed).
    """

    def __init__(self, fifo: str):
        super().__init__(daemon=True)
        self._fd = os.open(fifo, os.O_WRONLY)
        self._queue = np.zeros(0, np.int16)
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def say(self, pcm: np.ndarray) -> None:
        if pcm.dtype != np.int16:
            pcm = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
        with self._lock:
            self._queue = np.concatenate([self._queue, pcm])

    def busy(self) -> bool:
        with self._lock:
            return len(self._queue) > 0

    def run(self) -> None:
        blk = SR // 50
        t = time.monotonic()
        try:
            while not self._halt.is_set():
                with self._lock:
                    out, self._queue = self._queue[:blk], self._queue[blk:]
                try:
                    os.write(self._fd, np.pad(out, (0, blk - len(out))).astype("<i2").tobytes())
                except (BrokenPipeError, OSError):
                    return  # the daemon went away (fault tests kill it)
                t += blk / SR
                time.sleep(max(0.0, t - time.monotonic()))
        finally:
            os.close(self._fd)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _pulse_server(tmp_path_factory):
    if not shutil.which("pulseaudio") or not shutil.which("pactl"):
        pytest.skip("pulseaudio / pactl not installed (apt-get install pulseaudio pulseaudio-utils)")
    srv = PulseServer(tmp_path_factory.mktemp("pulse-rt")).start()
    try:
        yield srv
    finally:
        srv.stop()
        _refresh_portaudio()


@pytest.fixture
def pulse(tmp_path_factory):
    """A running private PulseAudio daemon (function scope: fault tests kill it)."""
    yield from _pulse_server(tmp_path_factory)


@pytest.fixture(scope="module")
def pulse_module(tmp_path_factory):
    """One daemon shared by a module's tests (for rigs that take seconds to settle); do not kill it."""
    yield from _pulse_server(tmp_path_factory)


@pytest.fixture
def mic_feeder(pulse):
    """A real-time writer into the virtual mic; stopped only after the test (and its streams) finished."""
    feeder = FifoFeeder(pulse.fifo)
    feeder.start()
    try:
        yield feeder
    finally:
        feeder.stop()


def ncc_max(captured: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    """Best normalized cross-correlation of ``ref`` inside ``captured`` and the lag (samples) where it occurs."""
    cap = captured.astype(np.float64)
    ref = ref.astype(np.float64)
    if len(cap) < len(ref):
        return 0.0, 0
    n = 1 << (len(cap) + len(ref)).bit_length()
    c = np.fft.irfft(np.fft.rfft(cap, n) * np.conj(np.fft.rfft(ref, n)), n)[: len(cap) - len(ref) + 1]
    cs = np.concatenate([[0.0], np.cumsum(cap ** 2)])
    energy = np.sqrt(np.maximum(cs[len(ref):] - cs[: -len(ref)], 0)) * np.linalg.norm(ref) + 1e-12
    score = c / energy
    lag = int(np.argmax(score))
    return float(score[lag]), lag


def chirp(seconds: float = 1.0, f0: float = 200.0, f1: float = 3000.0, sr: int = SR,
          amp: float = 0.5) -> np.ndarray:
    """A linear sweep with faded ends: a sharp, unambiguous cross-correlation peak."""
    t = np.arange(int(seconds * sr)) / sr
    x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds)))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return (amp * x * fade).astype(np.float32)

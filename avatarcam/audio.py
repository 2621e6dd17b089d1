"""Audio sources: the live microphone and audio files, both as 16 kHz float32 mono blocks.

Every source is an iterator of fixed-size blocks and a context manager, plus ``read(timeout)`` for a
worker thread that must keep checking a stop flag. The microphone must never stall the engine: a
device that disappears turns into paced silence while the source reopens it in the background.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np

from avatarcam.errors import ConfigError, DeviceError
from avatarcam.resample import PolyphaseResampler
from engine.config import SAMPLE_RATE

log = logging.getLogger(__name__)
T = TypeVar("T")

_NO_PORTAUDIO_HINT = ("no audio devices: PortAudio or the sound server is not available "
                      "(Linux: apt-get install libportaudio2 pulseaudio; check that PulseAudio/PipeWire runs)")


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device as the device pickers show it."""

    index: int
    name: str
    channels: int
    default_rate: float
    is_default: bool
    hostapi: str = ""


def _sounddevice():
    """Import sounddevice lazily: without PortAudio the import itself raises OSError."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise DeviceError(f"Audio is unavailable: {e}. Install PortAudio (Linux: apt-get install "
                          "libportaudio2) and the 'sounddevice' package.") from e
    return sd


def refresh_devices() -> None:
    """Re-scan devices. PortAudio fixes its device list at start-up, so a sound server that started
    later (or a device plugged in later) is invisible until this runs. Closes every open stream."""
    try:
        sd = _sounddevice()
    except DeviceError:
        return
    try:
        sd._terminate()
        sd._initialize()
    except Exception as e:  # a broken PortAudio must not crash a device picker
        log.warning("could not re-initialise PortAudio: %s", e)


def _list_devices(kind: str) -> list[AudioDevice]:
    try:
        sd = _sounddevice()
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default = sd.default.device[0 if kind == "input" else 1]
    except Exception as e:
        log.warning("%s (%s)", _NO_PORTAUDIO_HINT, e)
        return []
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    out = [AudioDevice(index=d["index"], name=d["name"], channels=int(d[key]),
                       default_rate=float(d["default_samplerate"]), is_default=d["index"] == default,
                       hostapi=hostapis[d["hostapi"]]["name"])
           for d in devices if d[key] > 0]
    if not out:
        log.warning("%s (PortAudio lists no %s devices)", _NO_PORTAUDIO_HINT, kind)
    return out


def list_input_devices() -> list[AudioDevice]:
    """Microphones; an empty list (with a logged hint) when there is no PortAudio or sound server."""
    return _list_devices("input")


def list_output_devices() -> list[AudioDevice]:
    """Speakers / virtual cables; an empty list (with a logged hint) when there is none."""
    return _list_devices("output")


def resolve_device(device: int | str | None, kind: str) -> AudioDevice:
    """Find a device by index, exact name or unique name substring; ``None`` is the system default."""
    devices = _list_devices(kind)
    what = "Microphone" if kind == "input" else "Audio output"
    if devices and device is None:
        for d in devices:
            if d.is_default:
                return d
        return devices[0]
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        for d in devices:
            if d.index == int(device):
                return d
    elif isinstance(device, str):
        exact = [d for d in devices if d.name == device]
        if exact:
            return exact[0]
        partial = [d for d in devices if device.lower() in d.name.lower()]
        if len(partial) == 1:
            return partial[0]
        if len(partial) > 1:
            names = ", ".join(repr(d.name) for d in partial)
            raise DeviceError(f"{what} '{device}' is ambiguous: it matches {names}. Give the full name "
                              "or the index (`avatarcam devices` lists them).")
    available = ", ".join(f"[{d.index}] {d.name}" for d in devices) or "none"
    shown = "default" if device is None else device
    raise DeviceError(f"{what} '{shown}' not found. Available: {available}. "
                      "Run `avatarcam devices` to list them.")


def block_samples(block_ms: float, sample_rate: int = SAMPLE_RATE) -> int:
    n = int(round(sample_rate * block_ms / 1000.0))
    if n <= 0:
        raise ConfigError(f"audio block_ms must be > 0, got {block_ms}")
    return n


class AudioSource:
    """Base: iterate 16 kHz float32 mono blocks of ``block_size`` samples; close on exit."""

    sample_rate: int = SAMPLE_RATE
    block_size: int

    def open(self) -> "AudioSource":
        return self

    def close(self) -> None:
        pass

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        """The next block, or None when nothing came within ``timeout`` or the source has ended."""
        raise NotImplementedError

    @property
    def ended(self) -> bool:
        return False

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            block = self.read(timeout=0.5)
            if block is not None:
                yield block
            elif self.ended:
                return


class _Ring:
    """Preallocated float32 FIFO filled by the audio callback: writes copy into place, never allocate.

    When full, the oldest audio is dropped (a late consumer should catch up to the present, not lag).
    """

    def __init__(self, capacity: int):
        self._buf = np.zeros(capacity, np.float32)
        self._start = 0
        self._size = 0
        self.dropped = 0
        self.cond = threading.Condition()

    def write(self, x: np.ndarray) -> bool:
        cap = len(self._buf)
        n = len(x)
        overflow = False
        with self.cond:
            if n > cap:
                x, n = x[-cap:], cap
            free = cap - self._size
            if n > free:
                drop = n - free
                self._start = (self._start + drop) % cap
                self._size -= drop
                self.dropped += drop
                overflow = True
            end = (self._start + self._size) % cap
            first = min(n, cap - end)
            self._buf[end:end + first] = x[:first]
            if first < n:
                self._buf[:n - first] = x[first:]
            self._size += n
            self.cond.notify()
        return overflow

    def read_all(self) -> np.ndarray:
        """Take everything buffered (called with ``cond`` held)."""
        cap = len(self._buf)
        n = self._size
        first = min(n, cap - self._start)
        out = np.concatenate([self._buf[self._start:self._start + first], self._buf[:n - first]])
        self._start = (self._start + n) % cap
        self._size = 0
        return out

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        with self.cond:
            self._start = self._size = 0


def close_stream(stream, timeout: float) -> bool:
    """Abort and close a PortAudio stream from a helper thread; give up after ``timeout``.

    PortAudio's close can block forever (e.g. a stream that never received a frame), and the caller
    is usually a session shutting down: better to leak one stream than to hang the app.
    """
    def work():
        try:
            stream.abort()
        except Exception:
            pass
        try:
            stream.close()
        except Exception:
            pass

    t = threading.Thread(target=work, name="avatarcam-stream-close", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        log.warning("PortAudio did not close the audio stream within %.1f s; abandoning it", timeout)
        return False
    return True


def open_stream(make: Callable[[int], T], device: AudioDevice, rate: int, what: str,
                fallback: bool = True) -> tuple[T, int]:
    """``make(rate)``, or, when the device refuses that rate, ``make(device's own rate)``; returns (stream, rate).

    Many devices (Bluetooth headsets, some USB mics) open only at their own rate; the caller
    resamples. ``what`` names the device for the user ("Microphone", "Audio output"); without
    ``fallback`` a refused rate is an error.
    """
    try:
        return make(rate), rate
    except DeviceError:
        raise
    except Exception as e:
        if not fallback:
            raise DeviceError(f"{what} '{device.name}' cannot open at {rate} Hz: {e}") from e
        own = int(device.default_rate)
        log.info("%s %r refuses %d Hz (%s); opening at %d Hz and resampling", what.lower(), device.name, rate, e, own)
        try:
            return make(own), own
        except Exception as e2:
            raise DeviceError(f"{what} '{device.name}' could not be opened: {e2}. "
                              "Run `avatarcam devices` to list the available ones.") from e2


class MicSource(AudioSource):
    """Live microphone over sounddevice.

    The PortAudio callback only copies samples into a ring buffer; resampling (when the device cannot
    run at 16 kHz) happens in the reading thread. If the device vanishes (stream error, or no frames
    for ``stall_s``) the source counts a fault, logs it, yields real-time silence and reopens the
    device with exponential backoff, so the consumer never waits forever.
    """

    def __init__(self, device: int | str | None = None, block_ms: float = 20, *,
                 device_rate: int | None = None, buffer_s: float = 2.0, stall_s: float = 1.0,
                 first_frame_s: float = 3.0, retry_s: tuple[float, float] = (0.25, 4.0),
                 close_timeout_s: float = 2.0):
        self.device = device
        self.block_size = block_samples(block_ms)
        self._block_s = self.block_size / SAMPLE_RATE
        self._forced_rate = device_rate
        self._buffer_s = buffer_s
        self._stall_s = stall_s
        self._first_frame_s = first_frame_s
        self._retry_min, self._retry_max = retry_s
        self._close_timeout = close_timeout_s
        self.device_info: AudioDevice | None = None
        self.device_rate: int = SAMPLE_RATE
        self._ring: _Ring | None = None
        self._resampler: PolyphaseResampler | None = None
        self._pending = np.zeros(0, np.float32)
        self._stream = None
        self._lock = threading.Lock()
        self._gen = 0
        self._opened_at = 0.0
        self._last_frame_at: float | None = None
        self._finished = False
        self._pa_overflows = 0
        self._ring_drop_events = 0
        self._reported_overflows = 0
        self._fault = False
        self._silence_due = 0.0
        self._reconnect: threading.Thread | None = None
        self._retry_delay = self._retry_min
        self._closing = threading.Event()
        self.faults = 0
        self.last_error: str | None = None
        self.recoveries = 0

    # --- public state -------------------------------------------------------------------------
    @property
    def overflows(self) -> int:
        """Overflow events: PortAudio input overflows plus ring-buffer drops (consumer too slow)."""
        return self._pa_overflows + self._ring_drop_events

    @property
    def faulted(self) -> bool:
        """True while the device is lost and silence is being yielded."""
        return self._fault

    # --- open / close -------------------------------------------------------------------------
    def open(self) -> "MicSource":
        sd = _sounddevice()
        self.device_info = resolve_device(self.device, "input")
        self._closing.clear()
        stream, rate = open_stream(lambda r: self._make_stream(sd, r), self.device_info,
                                   self._forced_rate or SAMPLE_RATE, "Microphone", fallback=self._forced_rate is None)
        self.device_rate = rate
        self._resampler = None if rate == SAMPLE_RATE else PolyphaseResampler(rate, SAMPLE_RATE)
        self._ring = _Ring(int(self._buffer_s * rate) + 4096)
        self._install(stream)
        log.info("microphone %r open at %d Hz, %d-sample blocks", self.device_info.name, rate, self.block_size)
        return self

    def _make_stream(self, sd, rate: int):
        gen = self._gen + 1

        def callback(indata, frames, time_info, status):
            if gen != self._gen:
                return
            if status.input_overflow:
                self._pa_overflows += 1
            self._last_frame_at = time.monotonic()
            if self._ring.write(indata[:, 0]):
                self._ring_drop_events += 1

        def finished():
            if gen == self._gen:
                self._finished = True
                with self._ring.cond:
                    self._ring.cond.notify()

        stream = sd.InputStream(samplerate=rate, channels=1, dtype="float32", device=self.device_info.index,
                                blocksize=int(round(rate * self._block_s)), callback=callback,
                                finished_callback=finished)
        return stream, gen

    def _install(self, made) -> None:
        stream, gen = made
        with self._lock:
            self._gen = gen
            self._stream = stream
            self._finished = False
            self._last_frame_at = None
            self._opened_at = time.monotonic()
        stream.start()

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            stream, self._stream = self._stream, None
            self._gen += 1
        if self._reconnect is not None:
            self._reconnect.join(self._close_timeout)
            self._reconnect = None
        if stream is not None:
            close_stream(stream, self._close_timeout)
        with self._lock:  # a reconnect that finished meanwhile may have installed a stream
            stream, self._stream = self._stream, None
        if stream is not None:
            close_stream(stream, self._close_timeout)

    # --- health -------------------------------------------------------------------------------
    def _stream_state(self, now: float) -> str:
        """'ok' (frames flowing), 'waiting' (opened, first frames not yet due) or 'dead'."""
        if self._stream is None or self._finished:
            return "dead"
        last = self._last_frame_at
        if last is None:
            return "waiting" if now - self._opened_at < self._first_frame_s else "dead"
        return "ok" if now - last < self._stall_s else "dead"

    def _check_health(self, now: float) -> None:
        state = self._stream_state(now)
        if not self._fault:
            if state == "dead":
                self._enter_fault(now)
            return
        if state == "ok":
            self._fault = False
            self._retry_delay = self._retry_min
            self.recoveries += 1
            self._pending = np.zeros(0, np.float32)
            if self._resampler is not None:
                self._resampler.reset()
            log.info("microphone %r is back", self.device_info.name if self.device_info else self.device)
        elif state == "dead" and (self._reconnect is None or not self._reconnect.is_alive()):
            self._start_reconnect()

    def _enter_fault(self, now: float) -> None:
        if self._finished:
            reason = "the audio stream stopped with an error (device removed or sound server gone)"
        elif self._last_frame_at is None:
            reason = f"no audio arrived within {self._first_frame_s:.1f} s of opening"
        else:
            reason = f"no audio for {now - self._last_frame_at:.1f} s"
        self.faults += 1
        self.last_error = reason
        self._fault = True
        self._silence_due = now
        self._pending = np.zeros(0, np.float32)
        log.error("microphone %r lost: %s; sending silence and reconnecting",
                  self.device_info.name if self.device_info else self.device, reason)
        self._start_reconnect()

    def _start_reconnect(self) -> None:
        if self._closing.is_set():
            return
        delay = self._retry_delay
        self._retry_delay = min(self._retry_max, self._retry_delay * 2)
        self._reconnect = threading.Thread(target=self._reconnect_once, args=(delay,),
                                           name="avatarcam-mic-reconnect", daemon=True)
        self._reconnect.start()

    def _reconnect_once(self, delay: float) -> None:
        with self._lock:
            old, self._stream = self._stream, None
            self._gen += 1
        if old is not None:
            close_stream(old, self._close_timeout)
        if self._closing.wait(delay):
            return
        try:
            sd = _sounddevice()
            made = self._make_stream(sd, self.device_rate)
            if self._closing.is_set():
                close_stream(made[0], self._close_timeout)
                return
            self._install(made)
            log.info("microphone reopened; waiting for audio")
        except Exception as e:
            self.last_error = f"reopen failed: {e}"
            log.warning("microphone reopen failed (next try in %.2f s): %s", self._retry_delay, e)

    # --- reading ------------------------------------------------------------------------------
    def _report_overflows(self) -> None:
        n = self.overflows
        if n != self._reported_overflows:
            log.warning("microphone overflow: %d new (total %d); the reader is too slow",
                        n - self._reported_overflows, n)
            self._reported_overflows = n

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        if self._ring is None:
            raise RuntimeError("MicSource is not open; use `with MicSource(...) as src:`")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if len(self._pending) >= self.block_size:
                block, self._pending = self._pending[:self.block_size], self._pending[self.block_size:]
                self._report_overflows()
                return block
            now = time.monotonic()
            self._check_health(now)
            if self._fault:
                due = self._silence_due
                if deadline is not None and due > deadline:
                    time.sleep(max(0.0, deadline - now))
                    return None
                time.sleep(max(0.0, due - now))
                self._silence_due = max(due + self._block_s, time.monotonic() - 0.2)
                if self._stream_state(time.monotonic()) != "ok":
                    self._ring.clear()  # stale audio from before the fault must not play after it
                return np.zeros(self.block_size, np.float32)
            wait = 0.05 if deadline is None else min(0.05, deadline - now)
            if wait <= 0:
                return None
            with self._ring.cond:
                if not len(self._ring):
                    self._ring.cond.wait(wait)
                raw = self._ring.read_all() if len(self._ring) else None
            if raw is not None:
                chunk = raw if self._resampler is None else self._resampler.process(raw)
                self._pending = np.concatenate([self._pending, chunk])


class FileSource(AudioSource):
    """Audio from a file (wav/mp3/flac/m4a/... via PyAV), downmixed and resampled to 16 kHz.

    ``realtime=True`` paces blocks at the speed they would arrive from a mic (for live previews and
    the virtual camera); ``False`` yields as fast as the consumer reads (offline rendering).
    The last block is zero-padded to full size.
    """

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = False, block_ms: float = 20):
        self.path = Path(path)
        self.realtime = realtime
        self.loop = loop
        self.block_size = block_samples(block_ms)
        self._pcm: np.ndarray | None = None
        self._pos = 0
        self._t0: float | None = None
        self._emitted = 0
        self._ended = False

    @property
    def pcm(self) -> np.ndarray:
        """The whole decoded clip (float32, 16 kHz mono), e.g. to mux into a recording."""
        if self._pcm is None:
            self._pcm = decode_audio_file(self.path)
        return self._pcm

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / SAMPLE_RATE

    @property
    def ended(self) -> bool:
        return self._ended

    def open(self) -> "FileSource":
        _ = self.pcm
        self._pos = 0
        self._emitted = 0
        self._t0 = None
        self._ended = False
        return self

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        pcm = self.pcm
        if self._ended or len(pcm) == 0:
            self._ended = True
            return None
        if self.realtime:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now
            due = self._t0 + self._emitted * self.block_size / SAMPLE_RATE
            if timeout is not None and due - now > timeout:
                time.sleep(max(0.0, timeout))
                return None
            time.sleep(max(0.0, due - now))
        block = pcm[self._pos:self._pos + self.block_size]
        self._pos += len(block)
        while len(block) < self.block_size and self.loop:
            self._pos = self.block_size - len(block)
            block = np.concatenate([block, pcm[:self._pos]])
        if len(block) < self.block_size:
            block = np.concatenate([block, np.zeros(self.block_size - len(block), np.float32)])
        if self._pos >= len(pcm) and not self.loop:
            self._ended = True
        self._emitted += 1
        return block

    def __iter__(self) -> Iterator[np.ndarray]:
        while not self._ended:
            block = self.read(timeout=None)
            if block is None:
                return
            yield block


def decode_audio_file(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any audio file PyAV/FFmpeg reads into float32 mono at ``sample_rate``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Audio file '{path}' not found.")
    try:
        import av
    except ImportError as e:
        raise DeviceError("Reading audio files needs PyAV: pip install av") from e
    chunks = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ConfigError(f"'{path}' has no audio stream.")
            stream = container.streams.audio[0]
            # Keep the channels and average them ourselves: FFmpeg's own downmix adds +3 dB for a
            # centred voice, and a level that depends on the file's layout would bias the engine.
            resampler = av.AudioResampler(format="fltp", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
    except ConfigError:
        raise
    except Exception as e:  # av.FFmpegError and friends: the file is not audio we can read
        raise ConfigError(f"Could not decode audio file '{path}': {e}") from e
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)

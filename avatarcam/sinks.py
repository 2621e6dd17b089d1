"""Frame sinks: where rendered RGB frames go. Every sink is ``with Sink(...) as s: s.send(frame)``.

``VirtualCamera`` (pyvirtualcam), ``VideoFile`` (PyAV mp4 with muxed audio), ``NullSink`` and
``FanoutSink`` (several at once). Frames are uint8 HxWx3 RGB of any size; sinks fit them to their own.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from avatarcam.errors import ConfigError, DeviceError
from avatarcam.frames import convert_rgb, fit_letterbox
from engine.config import SAMPLE_RATE

log = logging.getLogger(__name__)

MACOS_CAMERA_SIZE = (1280, 720)
_CONVERTIBLE = {"RGB", "BGR", "RGBA", "GRAY", "I420", "NV12", "YUYV", "UYVY"}


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}"
        raise ValueError(f"a frame must be a uint8 HxWx3 RGB array, got {got}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Sink:
    """Base sink: context manager; ``send`` frames, optionally ``send_audio`` 16 kHz blocks."""

    name = "sink"

    def open(self) -> "Sink":
        return self

    def send(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def send_audio(self, block: np.ndarray) -> None:
        """Audio that belongs to the frames sent so far; sinks without audio ignore it."""

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """Stop after a failure; by default the same as close()."""
        self.close()

    def __enter__(self):
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class NullSink(Sink):
    """Discards frames (benchmarks, headless runs) but counts them."""

    name = "null"

    def __init__(self) -> None:
        self.frames_sent = 0
        self.audio_samples = 0

    def send(self, frame: np.ndarray) -> None:
        _check_frame(frame)
        self.frames_sent += 1

    def send_audio(self, block: np.ndarray) -> None:
        self.audio_samples += len(block)


# ------------------------------------------------------------------------------------ virtual camera

def no_camera_message(system: str, error: str) -> str:
    """The one message a user needs when no virtual camera backend can start on ``system``."""
    said = f" (pyvirtualcam said: {error.strip()})" if error.strip() else ""
    if system == "Linux":
        return ("No virtual camera: the v4l2loopback kernel module is not loaded. Install and load it:\n"
                "  sudo apt install v4l2loopback-dkms   (Fedora: akmod-v4l2loopback)\n"
                "  sudo modprobe v4l2loopback devices=1 video_nr=10 card_label=AvatarCam exclusive_caps=1\n"
                "exclusive_caps=1 is required for Chrome, Zoom and Teams to list the camera." + said)
    if system == "Windows":
        if "could not be started" in error or "in use" in error:
            return ("The OBS Virtual Camera is held by OBS itself (its 'Start Virtual Camera' is on). Stop the "
                    "virtual camera in OBS, or let AvatarCam drive OBS instead (obs.enabled)." + said)
        return ("No virtual camera: install OBS Studio 28 or newer and click 'Start Virtual Camera' once, "
                "then 'Stop Virtual Camera', so Windows registers the OBS camera." + said)
    if system == "Darwin":
        return ("No virtual camera: install OBS Studio 30 or newer, click 'Start Virtual Camera' once and allow "
                "the camera extension in System Settings > Privacy & Security, then quit OBS." + said)
    return f"No virtual camera backend is available on {system}." + said


class VirtualCamera(Sink):
    """A virtual webcam through pyvirtualcam.

    Frames of any size are letterboxed to the camera size; on macOS the OBS camera only works
    reliably at 1280x720, so that size is used there. When the backend's native format is not RGB
    (OBS: NV12 or UYVY), frames are converted here and sent natively. ``fmt`` forces a format.
    """

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 25, device: str | None = None,
                 backend: str | None = None, fmt: str | None = None, mirror: bool = False,
                 pad: tuple[int, int, int] = (0, 0, 0)):
        if width <= 0 or height <= 0 or fps <= 0:
            raise ConfigError(f"camera size and fps must be positive, got {width}x{height} @ {fps}")
        if sys.platform == "darwin" and backend in (None, "obs") and (width, height) != MACOS_CAMERA_SIZE:
            log.info("macOS virtual camera: using %dx%d (requested %dx%d)", *MACOS_CAMERA_SIZE, width, height)
            width, height = MACOS_CAMERA_SIZE
        if fmt is not None and str(fmt).upper() not in _CONVERTIBLE:
            raise ConfigError(f"camera.fmt {fmt!r} is not one of {sorted(_CONVERTIBLE)}")
        self.width, self.height, self.fps = int(width), int(height), fps
        self._device_req, self._backend_req = device, backend
        self._fmt_req = None if fmt is None else str(fmt).upper()
        self.mirror = mirror
        self.pad = pad   # letterbox bars: black, or a green-screen avatar's key colour
        self.fmt = "RGB"
        self._cam = None
        self.frames_sent = 0

    @property
    def device(self) -> str | None:
        """The camera as apps list it (e.g. ``/dev/video10``, ``OBS Virtual Camera``)."""
        return self._cam.device if self._cam is not None else None

    @property
    def backend(self) -> str | None:
        return self._cam.backend if self._cam is not None else None

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"virtual camera {self.device or self._device_req or ''}".strip()

    def _camera(self, fmt: str):
        import pyvirtualcam

        return pyvirtualcam.Camera(self.width, self.height, self.fps, fmt=pyvirtualcam.PixelFormat[fmt],
                                   device=self._device_req, backend=self._backend_req)

    def open(self) -> "VirtualCamera":
        try:
            import pyvirtualcam  # noqa: F401
        except ImportError as e:
            raise DeviceError("The virtual camera needs pyvirtualcam: pip install pyvirtualcam") from e
        import platform

        from pyvirtualcam.camera import BACKENDS

        if self._backend_req is not None and self._backend_req not in BACKENDS:
            raise DeviceError(no_camera_message(platform.system(), f"backend {self._backend_req!r} does not "
                                                f"exist here (available: {sorted(BACKENDS) or 'none'})"))
        fmt = self._fmt_req or "RGB"
        try:
            cam = self._camera(fmt)
            native = cam.native_fmt.name if cam.native_fmt is not None else None
            if self._fmt_req is None and native not in (None, fmt) and native in _CONVERTIBLE:
                cam.close()
                fmt = native
                cam = self._camera(fmt)
        except RuntimeError as e:
            raise DeviceError(no_camera_message(platform.system(), str(e))) from e
        self._cam, self.fmt = cam, fmt
        log.info("virtual camera %s (%s) open: %dx%d @ %s fps, sending %s", cam.device, cam.backend,
                 self.width, self.height, self.fps, fmt)
        return self

    def send(self, frame: np.ndarray) -> None:
        if self._cam is None:
            raise RuntimeError("VirtualCamera is not open; use `with VirtualCamera(...) as cam:`")
        _check_frame(frame)
        if self.mirror:
            frame = frame[:, ::-1]
        frame = fit_letterbox(frame, self.width, self.height, self.pad)
        self._cam.send(convert_rgb(np.ascontiguousarray(frame), self.fmt))
        self.frames_sent += 1

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            cam.close()


# ------------------------------------------------------------------------------------- video file

class RecordingFull(DeviceError):
    """The recording's disk (or the process's file-size limit) is about to run out; nothing was lost yet."""


def free_bytes(folder: Path) -> int:
    """Bytes this process may still add to a file in ``folder``: free disk space, and RLIMIT_FSIZE."""
    try:
        st = os.statvfs(folder)
        room = st.f_bavail * st.f_frsize
    except (OSError, AttributeError):   # Windows has no statvfs
        import shutil
        room = shutil.disk_usage(folder).free
    return room


def file_size_limit() -> int | None:
    """The process's largest allowed file (``ulimit -f``), or None when unlimited / not on this OS."""
    try:
        import resource
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


class VideoFile(Sink):
    """An mp4 (H.264 yuv420p + AAC) written with PyAV.

    Frame ``i`` is shown at ``i / fps`` and audio sample ``s`` at ``s / sample_rate``, both from zero.
    Audio (a clip passed as ``audio``, or blocks given to ``send_audio``) is only encoded up to the
    video written so far, and ``close()`` cuts or pads it to the video's length (to the nearest AAC
    frame, < 1 video frame off): the file holds exactly the audio that belongs to its frames, however
    the stream ended.

    The file is written under a temporary name in the same folder and renamed on ``close()``;
    ``abort()`` deletes it (never a half-written file under ``path``). Before each frame the free
    space (disk and ``ulimit -f``) is checked against what finishing the file needs; when it runs
    short ``send`` raises ``RecordingFull`` without writing, so ``close()`` can still finish a
    playable file with everything recorded so far.
    """

    RESERVE_BYTES = 256 << 10      # room kept to finish the file: the index (moov) and the encoders' tail,
    RESERVE_FRAMES = 32            # ... plus this many average frames (x264's look-ahead) and 64 B a frame

    def __init__(self, path: str | Path, width: int, height: int, fps: float,
                 audio: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE, *, crf: int = 23,
                 preset: str = "veryfast", audio_bitrate: int = 96000):
        if width <= 0 or height <= 0 or fps <= 0:
            raise ConfigError(f"video size and fps must be positive, got {width}x{height} @ {fps}")
        self.path = Path(path)
        self.width, self.height = int(width) - int(width) % 2, int(height) - int(height) % 2  # yuv420p
        self.fps = Fraction(fps).limit_denominator(1001)
        self.sample_rate = int(sample_rate)
        self.crf, self.preset, self.audio_bitrate = crf, preset, audio_bitrate
        self._has_clip = audio is not None
        self._pending = np.zeros(0, np.float32) if audio is None else np.asarray(audio, np.float32).reshape(-1)
        self._audio_pts = 0            # samples handed to the AAC encoder
        self._tmp: Path | None = None
        self._container = None
        self._vstream = self._astream = None
        self._lock = threading.Lock()
        self._size_limit: int | None = None
        self.frames_sent = 0

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"video file {self.path}"

    @property
    def duration_s(self) -> float:
        return float(self.frames_sent / self.fps)

    def open(self) -> "VideoFile":
        try:
            import av
        except ImportError as e:
            raise DeviceError("Recording needs PyAV: pip install av") from e
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise ConfigError(f"output.record: folder '{folder}' does not exist")
        self._size_limit = file_size_limit()
        least = self.RESERVE_BYTES + (64 << 10)
        if min(free_bytes(folder), self._size_limit or 1 << 62) < least:
            raise RecordingFull(f"cannot record to {self.path}: less than {least >> 10} kB free "
                                f"there (disk or `ulimit -f`); free some space or record elsewhere")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=folder)
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._container = av.open(tmp, "w", format="mp4")
            v = self._container.add_stream("libx264", rate=self.fps,
                                           options={"crf": str(self.crf), "preset": self.preset})
            v.width, v.height, v.pix_fmt = self.width, self.height, "yuv420p"
            v.codec_context.time_base = 1 / self.fps
            v.time_base = 1 / self.fps
            a = self._container.add_stream("aac", rate=self.sample_rate, layout="mono")
            a.bit_rate = self.audio_bitrate
            self._vstream, self._astream = v, a
        except Exception:
            self.abort()
            raise
        return self

    def _check_room(self) -> None:
        """Raise RecordingFull when the next frame could leave too little room to finish the file."""
        written = self._tmp.stat().st_size if self._tmp is not None else 0
        need = self.RESERVE_BYTES + 64 * self.frames_sent + self.RESERVE_FRAMES * written // max(1, self.frames_sent)
        room = free_bytes(self._tmp.parent)
        if self._size_limit is not None:
            room = min(room, self._size_limit - written)
        if room < need:
            limit = "the file-size limit (ulimit -f)" if self._size_limit is not None and \
                self._size_limit - written < need else "the disk"
            raise RecordingFull(f"{limit} is full at {written / 1e6:.1f} MB")

    def send(self, frame: np.ndarray) -> None:
        import av

        _check_frame(frame)
        frame = fit_letterbox(frame, self.width, self.height)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        with self._lock:
            if self._container is None:
                raise RuntimeError("VideoFile is not open; use `with VideoFile(...) as out:`")
            self._check_room()
            vf.pts = self.frames_sent
            vf.time_base = 1 / self.fps
            for packet in self._vstream.encode(vf):
                self._container.mux(packet)
            self.frames_sent += 1
            self._encode_audio(self._samples_for(self.frames_sent))

    def send_audio(self, block: np.ndarray) -> None:
        if self._has_clip:
            raise ValueError("this VideoFile was given a whole audio clip; send_audio would duplicate it")
        with self._lock:
            if self._container is None:
                raise RuntimeError("VideoFile is not open")
            self._pending = np.concatenate([self._pending, np.asarray(block, np.float32).reshape(-1)])

    def _samples_for(self, frames: int) -> int:
        return int(frames * self.sample_rate / self.fps)

    def _encode_audio(self, upto: int, final: bool = False) -> None:
        """Encode whole AAC frames of the waiting audio up to sample ``upto`` (explicit timestamps: the
        muxer needs them to record the encoder's priming delay). ``final`` pads with silence to ``upto``."""
        import av

        size = self._astream.codec_context.frame_size or 1024
        while self._audio_pts + size <= upto:
            chunk, self._pending = self._pending[:size], self._pending[size:]
            if len(chunk) < size:
                if not final:
                    self._pending = chunk
                    return
                chunk = np.concatenate([chunk, np.zeros(size - len(chunk), np.float32)])
            af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
            af.sample_rate = self.sample_rate
            af.pts = self._audio_pts
            af.time_base = Fraction(1, self.sample_rate)
            self._audio_pts += size
            for packet in self._astream.encode(af):
                self._container.mux(packet)

    def close(self) -> None:
        """Finish the file: audio cut or padded to the video's length, then renamed into place.
        A file without a single frame is not kept."""
        with self._lock:
            if self._container is None:
                return
            if self.frames_sent == 0:
                self._discard()
                log.info("nothing recorded; %s not written", self.path)
                return
            try:
                size = self._astream.codec_context.frame_size or 1024
                target = self._samples_for(self.frames_sent)
                self._encode_audio(int(round(target / size)) * size, final=True)   # within half an AAC frame
                self._pending = np.zeros(0, np.float32)
                for stream in (self._vstream, self._astream):
                    for packet in stream.encode(None):
                        self._container.mux(packet)
                self._container.close()
                self._container = None
                with open(self._tmp, "rb+") as f:
                    os.fsync(f.fileno())
                os.chmod(self._tmp, 0o666 & ~_umask())   # a normal user file, not mkstemp's 0600
                os.replace(self._tmp, self.path)
                self._tmp = None
            except BaseException:
                self._discard()
                raise
        log.info("recorded %d frames to %s", self.frames_sent, self.path)

    def abort(self) -> None:
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:
                pass
        if self._tmp is not None:
            try:
                self._tmp.unlink()
            except FileNotFoundError:
                pass
            self._tmp = None


# ----------------------------------------------------------------------------------------- fan-out

class FanoutSink(Sink):
    """Sends every frame to several sinks. A sink that fails mid-stream is logged, counted and dropped;
    the others carry on (a broken virtual camera must not stop a recording, or the reverse).
    Opening is strict: if one sink cannot open, the ones already open are closed and the error raised."""

    name = "fanout"

    def __init__(self, sinks: Iterable[Sink]):
        self.sinks: list[Sink] = list(sinks)
        self.active: list[Sink] = []
        self.failures: dict[str, str] = {}
        self.frames_sent = 0

    @property
    def errors(self) -> int:
        return len(self.failures)

    def open(self) -> "FanoutSink":
        opened: list[Sink] = []
        try:
            for s in self.sinks:
                opened.append(s.open())
        except BaseException:
            for s in opened:
                try:
                    s.abort()
                except Exception:
                    log.exception("could not close %s", s.name)
            raise
        self.active = opened
        return self

    def _drop(self, sink: Sink, exc: BaseException) -> None:
        log.error("%s failed and was dropped: %s", sink.name, exc, exc_info=exc)
        self.failures[sink.name] = f"{type(exc).__name__}: {exc}"
        self.active = [s for s in self.active if s is not sink]
        try:
            sink.abort()
        except Exception:
            log.exception("could not close %s after its failure", sink.name)

    def _each(self, call: Callable[[Sink], None]) -> None:
        """Call every live sink; one that raises is dropped and the others go on."""
        for s in list(self.active):
            try:
                call(s)
            except Exception as e:
                self._drop(s, e)

    def send(self, frame: np.ndarray) -> None:
        self._each(lambda s: s.send(frame))
        self.frames_sent += 1

    def send_audio(self, block: np.ndarray) -> None:
        self._each(lambda s: s.send_audio(block))

    def close(self) -> None:
        first: BaseException | None = None
        for s in self.active:
            try:
                s.close()
            except Exception as e:
                log.error("closing %s failed: %s", s.name, e)
                first = first or e
        self.active = []
        if first is not None:
            raise first

    def abort(self) -> None:
        for s in self.active:
            try:
                s.abort()
            except Exception:
                log.exception("could not close %s", s.name)
        self.active = []

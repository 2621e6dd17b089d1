"""One stream's parts, opened together and closed together: engine, audio source, outputs, OBS, and
the capture -> engine -> pacer chain that connects them.

Why one object per stream: everything here exists only while a stream runs; building it all in one
constructor means no part is ever half there (the session holds one `LiveRun` or none).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.config import SAMPLE_RATE

from .capture import Capture
from .config import Settings
from .engine_setup import Engine, open_engine, warm
from .engine_worker import EngineWorker
from .errors import AvatarCamError, ConfigError, DeviceError
from .keying import Keying, green_screen
from .noise_gate import NoiseGate
from .outputs import PreviewSink, RecorderSink
from .pacer import Pacer
from .sinks import FanoutSink, Sink, VirtualCamera
from .stats import SessionStats, Timing, fill_stream_stats
from .stream_options import SessionOptions

log = logging.getLogger(__name__)


def is_realtime(options: SessionOptions, live_outputs: bool) -> bool:
    """Whether the input is paced like a live microphone (latency and dropped audio mean something)."""
    if options.audio_file is None:
        return True
    if options.realtime is not None:
        return options.realtime
    return live_outputs or options.preview


class LiveRun:
    """Opens every part of one stream (closing what it opened if a later part fails)."""

    def __init__(self, settings: Settings, options: SessionOptions, image: np.ndarray,
                 emit: Callable[[str, Any], None], warn: Callable[[str, BaseException | None], None]):
        self.settings, self.options = settings, options
        self.counters = SessionStats(state="starting")
        self.engine: Engine | None = None
        self.source = self.camera = self.recorder = self.delayed_mic = self.obs = None
        self.keying = Keying(settings, warn)
        try:
            self._open(image, emit, warn)
        except BaseException:
            self.close()
            raise

    def _open(self, image: np.ndarray, emit: Callable[[str, Any], None],
              warn: Callable[[str, BaseException | None], None]) -> None:
        s, o = self.settings, self.options
        self.engine = open_engine(s, o, say=lambda m: emit("info", m))
        stream = self.stream
        warm(self.engine, image, say=lambda m: emit("info", m))
        reference = stream.start(image, identity=o.avatar_identity)
        self.source = _open_source(s, o)
        if o.record:
            self.recorder = RecorderSink(Path(o.record), *stream.size, stream.fps,
                                         warn=lambda m: warn(m, None)).open()
        self.camera = _open_camera(s, o, warn, pad=green_screen(o.avatar_identity))
        self.delayed_mic = _open_delayed_mic(s, o, stream.expected_latency_s, warn)
        self.obs = _open_obs(s, o, on_status=lambda st: emit("obs", st), keying=self.keying)
        live = [self.camera] if self.camera is not None else []
        if o.preview:
            live.append(PreviewSink(lambda frame: emit("frame", frame)))
        self.paced = bool(live) or self.delayed_mic is not None
        self.realtime = is_realtime(o, self.camera is not None)
        self.capture = Capture(self.source, self.counters, live=self.realtime,
                               pace_file=o.audio_file is not None and self.realtime,
                               limit=None if o.duration_s is None else int(o.duration_s * SAMPLE_RATE),
                               delayed_mic=self.delayed_mic,
                               gate=None if s.audio.noise_gate_db is None else NoiseGate(s.audio.noise_gate_db))
        measure = o.audio_file is None or self.realtime
        self.timing = Timing(self.capture.clock, stream.fps, measure=measure)
        out_fps = s.camera.fps if self.camera is not None else stream.fps
        self.pacer = Pacer(live, self.counters, self.timing, out_fps=out_fps, model_fps=stream.fps,
                           max_buffer=max(2, stream.frames_per_block * 2), first_frame=reference)
        self.worker = EngineWorker(stream, self.capture.audio_q, reference, self._deliver, self.recorder)

    @property
    def stream(self):
        return self.engine.stream

    def set_letterbox(self, pad: tuple[int, int, int] | None) -> None:
        """The camera's bars follow the avatar: its key colour on a green screen, else black."""
        for sink in self.camera.sinks if self.camera is not None else ():
            if isinstance(sink, VirtualCamera):
                sink.pad = pad or (0, 0, 0)

    def follow_avatar(self, identity) -> None:
        """After a mid-stream switch: the letterbox and OBS's keyed source follow the new avatar.
        Returns at once; OBS is updated by its controller's own thread (`keying.Keying.follow`)."""
        self.set_letterbox(green_screen(identity))
        obs = self.obs
        if obs is not None:
            self.keying.follow(obs, identity)

    def _deliver(self, index: int, frame: np.ndarray, skip: int) -> None:
        if self.paced:
            self.pacer.put(index, frame, skip)
        elif self.realtime:
            self.timing.note_latency(index, skip)   # no live sink: a frame is out when it is made

    def threads(self) -> list[tuple[str, Callable[[Any], None]]]:
        """(name, run(stop)) of the stream's threads; a pacer only when something is shown live."""
        parts = [("capture", self.capture.run), ("engine", lambda stop: self.worker.run(stop, self.pacer.end))]
        if self.paced:
            parts.append(("pacer", self.pacer.run))
        return parts

    def snapshot(self, state: str, elapsed_s: float) -> SessionStats:
        st = self.counters
        st.state = state
        st.frames_generated = self.worker.frames
        st.audio_queue = self.capture.audio_q.qsize()
        st.frame_queue = self.pacer.frame_q.qsize()
        fill_stream_stats(st, self.stream, self.timing, elapsed_s)
        st.mic_faults = getattr(self.source, "faults", 0) if self.source is not None else st.mic_faults
        st.sink_errors = self.camera.errors if self.camera is not None else st.sink_errors
        st.obs_status = self.obs.status if self.obs is not None else st.obs_status
        st.engine = self.engine.describe()
        return SessionStats(**st.as_dict())

    @property
    def recording(self):
        return self.recorder.recording if self.recorder is not None else None

    def close(self) -> None:
        """Close every part that is open; the recording is finished (playable) even after an error."""
        close = getattr(self.engine.stream, "close", None) if self.engine is not None else None
        if close is not None:
            close()                                   # the pipelined stream's step thread
        for name in ("source", "camera", "delayed_mic", "recorder"):
            part = getattr(self, name)
            if part is not None:
                try:
                    part.close()
                except Exception as exc:
                    log.warning("closing %s failed: %s", name, exc)
                if name != "recorder":
                    setattr(self, name, None)
        if self.obs is not None:
            try:
                self.obs.restore()
                self.obs.close()
            except Exception as exc:
                log.warning("OBS restore failed: %s", exc)
            self.obs = None


def _open_source(s: Settings, o: SessionOptions):
    from .audio import FileSource, MicSource
    if o.audio_file is not None:
        path = Path(o.audio_file)
        if not path.exists():
            raise ConfigError(f"--audio: file not found: {path}")
        src = FileSource(path, realtime=False)
        if len(src.pcm) == 0:  # decode now: a bad file fails here, with a clear message
            raise ConfigError(f"--audio: {path} holds no audio samples (0 s); give a file with sound in it")
        return src.open()
    src = MicSource(s.audio.mic, block_ms=s.audio.block_ms)
    src.open()
    return src


def _open_camera(s: Settings, o: SessionOptions, warn, pad: tuple[int, int, int] | None = None) -> Sink | None:
    """The virtual camera, if wanted; missing is a warning unless asked for explicitly (--camera).
    `pad`: the letterbox colour (a green-screen avatar's key, so OBS keys the bars away too)."""
    if not (s.camera.enabled if o.camera is None else o.camera):
        return None
    cam = VirtualCamera(s.camera.width, s.camera.height, s.camera.fps, device=s.camera.device,
                        backend=s.camera.backend, mirror=s.camera.mirror, pad=pad or (0, 0, 0))
    try:
        cam.open()
    except DeviceError as exc:
        if o.camera:
            raise
        warn(str(exc), exc)
        return None
    log.info("streaming to virtual camera %s", cam.device)
    return FanoutSink([cam]).open()


def _open_delayed_mic(s: Settings, o: SessionOptions, expected_latency_s: float, warn):
    """Your voice, delayed to match the avatar, on a virtual output (audio.delayed_output)."""
    if not s.audio.delayed_output or o.audio_file is not None:
        return None
    from .delayed_mic import DelayedMicOutput
    mic = DelayedMicOutput(s.audio.delayed_output, expected_latency_s if s.audio.delay_auto else s.audio.delay_s)
    try:
        mic.open()
    except AvatarCamError as exc:
        warn(f"delayed microphone output disabled: {exc}", exc)
        return None
    return mic


def _open_obs(s: Settings, o: SessionOptions, on_status: Callable[[str], None], keying: Keying):
    if not (s.obs.enabled if o.obs is None else o.obs):
        return None
    from .obs import ObsConfig, ObsController
    cfg = ObsConfig(host=s.obs.host, port=s.obs.port, password=s.obs.password, scene=s.obs.scene or None,
                    source=s.obs.source or None, mic_input=s.obs.mic_input or None,
                    auto_sync_offset=s.obs.sync_offset_auto, keyed=keying.source(o.avatar_identity))
    obs = ObsController(cfg, on_status=on_status)
    obs.connect()
    obs.start_stream_scene()
    if not s.obs.sync_offset_auto:
        obs.set_sync_offset_ms(s.obs.sync_offset_ms)
    return obs

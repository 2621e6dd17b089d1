"""The live session: microphone or file -> engine -> paced frames -> camera / file / preview, plus OBS.

One object that the CLI and the UI both drive (`start()`, `stop()`, `wait()`, `stats()`, events);
they never see threads. Threads: capture (audio source) -> engine worker (features, step, decode)
-> pacer (steady fps; repeats the last frame when the engine is late, drops the oldest when it is
early) -> live sinks. The recorder gets every generated frame exactly once, in order, so the file
stays in sync with its audio whatever the pacer had to do.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import Settings
from .errors import AvatarCamError, DeviceError, ModelError
from .stream_options import SessionOptions, anchor_overrides
from engine.config import SAMPLE_RATE

log = logging.getLogger(__name__)

AUDIO_BACKLOG_S = 0.5   # most live audio that may wait for the engine; older audio is dropped beyond it
BEHIND_AFTER_S = 2.0    # the engine below real time this long (live input): say so, with the fix
BEHIND_RATE = 0.95      # audio the engine takes in per second of wall time, below which it is behind
_END = object()


@dataclass
class SessionEvent:
    kind: str           # "state" | "frame" | "stats" | "warning" | "error"
    data: Any = None


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


@dataclass
class Recording:
    """What happened to the mp4: frames and seconds kept, and why it stopped early (if it did)."""

    path: Path
    frames: int = 0
    seconds: float = 0.0
    written: bool = False
    stopped: str | None = None


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else 0.0


def set_threads(threads: int) -> None:
    """Torch CPU threads for the engine: leave a core for capture, pacing and everything else."""
    import os
    import torch
    torch.set_num_threads(threads if threads > 0 else max(1, (os.cpu_count() or 2) // 2))


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


class Session:
    def __init__(self, settings: Settings | None = None, options: SessionOptions | None = None):
        self.settings = settings or Settings()
        self.options = options or SessionOptions()
        self._listeners: list[Callable[[SessionEvent], None]] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._state = "idle"
        self._lock = threading.Lock()
        self._pending_image: np.ndarray | None = None
        self._muted = False
        self.error: BaseException | None = None
        self.stream = None

    # -- events ----------------------------------------------------------------------------------
    def on_event(self, callback: Callable[[SessionEvent], None]) -> Callable[[], None]:
        """Subscribe; events arrive on session threads (a UI must hop to its own thread)."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _emit(self, kind: str, data: Any = None) -> None:
        for cb in list(self._listeners):
            try:
                cb(SessionEvent(kind, data))
            except Exception:  # a broken listener must not stop the stream
                log.exception("session event listener failed")

    def _set_state(self, state: str) -> None:
        self._state = state
        self._emit("state", state)

    @property
    def state(self) -> str:
        return self._state

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the model, open sources and sinks, start the threads. Raises AvatarCamError on bad setup."""
        if self.running:
            raise AvatarCamError("the session is already streaming; stop it first")
        self._set_state("starting")
        self._stop.clear()
        self.error = None
        try:
            self._open()
        except BaseException as exc:
            self._close_all()
            self._set_state("error")
            if isinstance(exc, AvatarCamError):
                raise
            raise ModelError(f"could not start the stream: {exc}") from exc
        self._done.clear()
        self._t_start = time.monotonic()
        for target, name in ((self._capture_loop, "capture"), (self._engine_loop, "engine"),
                             (self._pacer_loop, "pacer")):
            t = threading.Thread(target=self._guard(target), name=f"avatarcam-{name}", daemon=True)
            self._threads.append(t)
            t.start()
        threading.Thread(target=self._supervise, name="avatarcam-supervisor", daemon=True).start()
        self._set_state("live")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop streaming (finite inputs also stop by themselves); restores OBS; closes files cleanly."""
        self._stop.set()
        self._done.wait(timeout)

    def request_stop(self) -> None:
        """Ask the stream to end (safe from a signal handler); wait() tells when it has."""
        self._stop.set()

    @property
    def realtime(self) -> bool:
        """Whether the input was paced like a live microphone (latency and dropped audio mean something)."""
        return self._realtime()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the stream ends (end of a file, --duration, stop() or an error)."""
        return self._done.wait(timeout)

    def switch_avatar(self, image: np.ndarray) -> None:
        """Use another avatar: at once if streaming (the engine restarts its window), else next start."""
        self.options.avatar_image = image
        if self.running:
            self._pending_image = image

    def mute(self, on: bool = True) -> None:
        """Mute the microphone: the avatar hears silence (mouth closes) and the delayed output goes quiet."""
        self._muted = on
        if getattr(self, "delayed_mic", None) is not None:
            self.delayed_mic.mute(on)

    @property
    def muted(self) -> bool:
        return self._muted

    def configure(self, **changes) -> None:
        """Change options (e.g. anchor overrides) between streams."""
        if self.running:
            raise AvatarCamError("stop the stream before changing its settings")
        self.options = dataclasses.replace(self.options, **changes)

    # -- setup -----------------------------------------------------------------------------------
    def _open(self) -> None:
        from engine.checkpoints import CheckpointError
        from engine.stream import open_stream
        from .sinks import FanoutSink, VideoFile, VirtualCamera
        s, o = self.settings, self.options
        self._stats = SessionStats(state="starting")
        set_threads(s.engine.threads)
        overrides = {**anchor_overrides(s.anchors), **o.stream_overrides}
        from .engine_choice import choose_engine, resolve_tuned
        from .models import resolve_model
        self.engine = choose_engine(s.engine, o.device)
        try:
            folder = resolve_model(o.model or s.engine.model)
            self.engine = resolve_tuned(self.engine, folder, say=lambda m: self._emit("info", m),
                                        stream_overrides=overrides)
            # on the CPU the stream loads in float32 and engine.accel converts what the variant needs
            dtype = self.engine.torch_dtype if self.engine.device != "cpu" else __import__("torch").float32
            self.stream = open_stream(folder, device=self.engine.device, dtype=dtype, seed=o.seed, vad=s.audio.vad,
                                      **overrides)
            self._apply_backend()
            self._pipeline()
        except CheckpointError as exc:
            raise ModelError(str(exc)) from exc
        except ValueError as exc:
            raise ModelError(f"invalid anchor/stream settings: {exc}") from exc
        image = o.avatar_image if o.avatar_image is not None else self._default_avatar()
        if self.engine.backend == "compile":       # compile now, not in the first live seconds
            from engine.accel import warm_stream
            self._emit("info", "preparing the compiled engine (faster once its code is cached on disk)")
            warm_stream(self.stream, image)
        self.reference = self.stream.start(image)
        fps = self.stream.fps
        width, height = self.stream.size

        self.source = self._open_source()
        self.recorder = None
        self.recording = None
        if o.record:
            # fed block by block with what the engine hears, so the file matches its frames whatever happens
            self.recorder = VideoFile(o.record, width, height, fps).open()
            self.recording = Recording(Path(o.record))
        live = []
        want_camera = s.camera.enabled if o.camera is None else o.camera
        if want_camera:
            cam = VirtualCamera(s.camera.width, s.camera.height, s.camera.fps, device=s.camera.device,
                                backend=s.camera.backend, mirror=s.camera.mirror)
            try:
                cam.open()
                live.append(cam)
                log.info("streaming to virtual camera %s", cam.device)
            except DeviceError as exc:
                if o.camera:          # asked for explicitly: that is an error
                    raise
                self._warn(str(exc))
        self.live = FanoutSink(live).open() if live else None
        self.delayed_mic = None
        if s.audio.delayed_output and o.audio_file is None:
            from .delayed_mic import DelayedMicOutput
            delay = self.stream.expected_latency_s if s.audio.delay_auto else s.audio.delay_s
            self.delayed_mic = DelayedMicOutput(s.audio.delayed_output, delay)
            try:
                self.delayed_mic.open()
            except AvatarCamError as exc:
                self._warn(f"delayed microphone output disabled: {exc}")
                self.delayed_mic = None
        self.obs = None
        if (s.obs.enabled if o.obs is None else o.obs):
            from .obs import ObsConfig, ObsController
            cfg = ObsConfig(host=s.obs.host, port=s.obs.port, password=s.obs.password, scene=s.obs.scene or None,
                            source=s.obs.source or None, mic_input=s.obs.mic_input or None,
                            auto_sync_offset=s.obs.sync_offset_auto)
            self.obs = ObsController(cfg, on_status=lambda st: self._emit("obs", st))
            self.obs.connect()
            self.obs.start_stream_scene()
            if not s.obs.sync_offset_auto:
                self.obs.set_sync_offset_ms(s.obs.sync_offset_ms)
        paced = self.live is not None or o.preview or self.delayed_mic is not None
        self.paced = paced
        # Live input: a slow machine must cost dropped audio (a skipped syllable), never seconds of lip lag.
        backlog = max(2, -(-int(AUDIO_BACKLOG_S * SAMPLE_RATE) // self.source.block_size))
        self.audio_q: queue.Queue = queue.Queue(maxsize=0 if not self._realtime() else backlog)
        self._engine_samples = 0   # audio samples the engine has been given
        self._sample_skip = 0      # audio dropped before the engine's current position (samples)
        self.frame_q: queue.Queue = queue.Queue()
        self.clock = AudioClock()
        self._frame_index = 0
        self._shown = 0
        self._latencies: collections.deque = collections.deque(maxlen=200)
        self._shown_times: collections.deque = collections.deque(maxlen=int(fps * 3))

    def _apply_backend(self) -> None:
        """engine.backend: eager as loaded, or the DiT wrapped by engine.backends (torch.compile; TensorRT
        on a GPU). A compiler that fails at run time falls back to eager and says so (stats.backend)."""
        self.backend_stats = None
        if self.engine.device == "cpu":      # DiT and decoder follow the variant (engine.accel)
            from engine.accel import Variant, apply_variant
            if self.engine.backend == "compile":   # compiled code kept between runs, beside the settings
                import os
                from .avatars import data_dir
                os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(data_dir() / "engine" / "inductor"))
            info = apply_variant(self.stream, Variant(self.engine.backend, self.engine.dtype))
            self.backend_stats = info.get("backend_stats")
            return
        if self.engine.backend == "eager":
            return
        from engine.backends import compile_model
        wrapped = compile_model(self.stream.model, self.engine.backend, dtype=self.engine.torch_dtype,
                                device=self.engine.device, stream=self.stream.stream_config)
        self.stream.sampler.model = wrapped
        self.backend_stats = wrapped.stats

    def _pipeline(self) -> None:
        """With a second core, the model steps on its own thread while features and decoding run here."""
        from engine.pipeline import PipelinedStream, usable_cores
        self.pipelined = self.engine.device == "cpu" and usable_cores() >= 2
        if self.pipelined:
            self.stream = PipelinedStream(self.stream)

    def _default_avatar(self) -> np.ndarray:
        try:
            from .avatars import AvatarLibrary
            return AvatarLibrary().default().load_image()
        except Exception as exc:  # library missing or broken: draw one
            log.debug("default avatar from the library failed (%s); drawing one", exc)
            from engine.toon import random_identity, render_portrait
            return render_portrait(random_identity(0), 512)

    def _realtime(self) -> bool:
        o = self.options
        if o.audio_file is None:
            return True
        if o.realtime is not None:
            return o.realtime
        return getattr(self, "live", None) is not None or o.preview

    def _open_source(self):
        from .audio import FileSource, MicSource
        o = self.options
        if o.audio_file is not None:
            path = Path(o.audio_file)
            if not path.exists():
                from .errors import ConfigError
                raise ConfigError(f"--audio: file not found: {path}")
            src = FileSource(path, realtime=False)
            if len(src.pcm) == 0:  # decode now: a bad file fails here, with a clear message
                from .errors import ConfigError
                raise ConfigError(f"--audio: {path} holds no audio samples (0 s); give a file with sound in it")
            src.open()
            return src
        src = MicSource(self.settings.audio.mic, block_ms=self.settings.audio.block_ms)
        src.open()
        return src

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self._emit("warning", message)

    # -- threads ---------------------------------------------------------------------------------
    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run():
            try:
                target()
            except BaseException as exc:  # report and stop: never a silent dead thread
                log.exception("session thread %s failed", threading.current_thread().name)
                self.error = exc
                self._emit("error", f"{type(exc).__name__}: {exc}")
                self._stop.set()
        return run

    def _capture_loop(self) -> None:
        limit = None if self.options.duration_s is None else int(self.options.duration_s * SAMPLE_RATE)
        realtime_file = self.options.audio_file is not None and self._realtime()
        t0 = time.monotonic()
        while not self._stop.is_set():
            block = self.source.read(timeout=0.2)
            if block is None:
                if self.source.ended:
                    break
                continue
            if limit is not None and self.clock.samples + len(block) > limit:
                block = block[: max(0, limit - self.clock.samples)]
            if realtime_file:  # pace a file like a microphone
                due = t0 + (self.clock.samples + len(block)) / SAMPLE_RATE
                time.sleep(max(0.0, due - time.monotonic()))
            if self._muted:
                block = np.zeros_like(block)
            now = time.monotonic()
            self.clock.add(len(block), now)
            if self.delayed_mic is not None:
                self.delayed_mic.push(block, now - len(block) / SAMPLE_RATE)
            self._put_audio(self.clock.samples - len(block), block)
            if limit is not None and self.clock.samples >= limit:
                break
        self.audio_q.put(_END)

    def _put_audio(self, start: int, block: np.ndarray) -> None:
        """Queue a block captured at stream sample `start`; when full, drop the oldest waiting block."""
        try:
            self.audio_q.put_nowait((start, block))
        except queue.Full:  # engine far behind the mic: drop the oldest audio, keep the newest
            try:
                dropped = self.audio_q.get_nowait()
                self._stats.dropped_audio_blocks += 1
                if dropped is not _END:
                    self._stats.dropped_audio_s += len(dropped[1]) / SAMPLE_RATE
            except queue.Empty:
                pass
            self.audio_q.put_nowait((start, block))

    def _engine_loop(self) -> None:
        try:
            while True:
                try:
                    block = self.audio_q.get(timeout=0.2)
                except queue.Empty:
                    if self._stop.is_set():
                        break
                    continue
                if self._pending_image is not None:
                    image, self._pending_image = self._pending_image, None
                    self.reference = self.stream.start(image)
                if block is _END or self._stop.is_set():
                    break
                start, block = block
                self._sample_skip = start - self._engine_samples
                self._engine_samples += len(block)
                self._record(lambda rec: rec.send_audio(block))   # only what the engine hears: in sync
                self._deliver(self.stream.push_audio(block))
            # end of input, Ctrl-C or a signal: turn the audio already heard into frames (a few steps)
            self._deliver(self.stream.flush())
        finally:
            self.frame_q.put(_END)

    def _record(self, call: Callable[[Any], None]) -> None:
        """Feed the recorder; when it fails (full disk...) keep what it has and let the stream go on."""
        rec = self.recorder
        if rec is None:
            return
        try:
            call(rec)
        except Exception as exc:
            self.recorder = None
            self._finish_recording(rec, exc)

    def _deliver(self, frames: list[np.ndarray]) -> None:
        for frame in frames:
            index = self._frame_index
            self._frame_index += 1
            self._record(lambda rec: rec.send(frame))
            if self.paced:
                self.frame_q.put((index, frame, self._sample_skip))
            elif self._realtime():
                self._note_latency(index, self._sample_skip)   # no live sink: a frame is out when it is made

    def _pacer_loop(self) -> None:
        """Show frames at the output rate (camera.fps with a camera, else the model's): a model frame is
        due every fps/out_fps ticks, so 25 fps frames on a 30 fps camera repeat every fifth tick (rate
        conversion, not counted); a frame that is due but not made yet is a repeat (engine late)."""
        if not self.paced:
            return
        out_fps = self.settings.camera.fps if self.live is not None else self.stream.fps
        period = 1.0 / out_fps
        per_tick = self.stream.fps / out_fps
        max_buffer = max(2, self.stream.frames_per_block * 2)
        last = self.reference
        next_t = time.monotonic()
        started = False
        finished = False
        owed = 0.0
        while not self._stop.is_set() and not finished:
            # drop the oldest when the engine ran ahead (keeps latency bounded)
            while self.frame_q.qsize() > max_buffer:
                item = self.frame_q.get_nowait()
                if item is _END:
                    finished = True
                    break
                self._stats.dropped_frames += 1
            owed += per_tick
            took = None
            while owed >= 1.0 and not finished:
                try:
                    item = self.frame_q.get_nowait()
                except queue.Empty:
                    break
                if item is _END:
                    finished = True
                    break
                owed -= 1.0
                took = item
            if finished and took is None:
                break
            if took is not None:
                index, last, skip = took
                started = True
                self._note_latency(index, skip)
            elif owed >= 1.0:
                if started:
                    self._stats.repeated_frames += 1   # engine late: hold the last frame, never freeze
                owed = min(owed, 1.0)                  # no catching up in a burst later
            self._show(last)
            next_t += period
            delay = next_t - time.monotonic()
            if delay < -period:                    # fell far behind (machine busy): resync the clock
                next_t = time.monotonic()
            else:
                time.sleep(max(0.0, delay))

    def _show(self, frame: np.ndarray) -> None:
        if self.live is not None:
            self.live.send(frame)
        self._shown += 1
        self._shown_times.append(time.monotonic())
        if self.options.preview:
            self._emit("frame", frame)

    def _note_latency(self, index: int, skip: int = 0) -> None:
        """Wall time from capturing the audio of frame `index` to showing it; `skip`: audio dropped before it."""
        if self.options.audio_file is not None and not self._realtime():
            return
        mid_sample = int((index + 0.5) * SAMPLE_RATE / self.stream.fps) + skip
        t_audio = self.clock.time_of(mid_sample)
        if t_audio is not None:
            self._latencies.append(time.monotonic() - t_audio)

    def _supervise(self) -> None:
        """Periodic stats, OBS / delayed-mic sync, and the orderly shutdown once the threads end."""
        last_offset = None
        pace = EnginePace()
        while any(t.is_alive() for t in self._threads):
            self._stop.wait(0.5)
            if self._realtime():
                self._check_pace(pace)
            stats = self.stats()
            self._emit("stats", stats)
            if stats.latency_s is not None:
                last_offset = self._sync_latency(stats.latency_s, last_offset)
            if self._stop.is_set():
                break
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self._close_all()
        self._threads.clear()
        final = self.stats()
        final.state = "error" if self.error else "stopped"
        self._final_stats = final
        self._set_state(final.state)
        self._done.set()

    def _check_pace(self, pace: "EnginePace") -> None:
        """Degrade visibly: when the engine stays below real time, one warning with the change that helps."""
        change = pace.update(time.monotonic(), self._engine_samples / SAMPLE_RATE)
        if change == "behind":
            self._stats.behind = f"the engine runs at {pace.rate:.2f}x real time, so audio is skipped: {self._advice()}"
            self._warn(self._stats.behind)
        elif change == "recovered":
            self._stats.behind = ""
            self._emit("info", "the engine keeps up with real time again")

    def _advice(self) -> str:
        """The one change most likely to help here."""
        e = self.engine
        if e.device == "cpu" and (self.settings.engine.backend != "auto" or self.settings.engine.dtype != "auto"):
            return "set engine.backend=auto and engine.dtype=auto (the fastest variant measured on this CPU)"
        if e.device == "cpu" and not getattr(self, "pipelined", False):
            return "give AvatarCam a second core (close other programs), so decoding runs beside the model"
        return "close programs that keep the CPU busy (a game, a browser, a second encoder in OBS)"

    def _sync_latency(self, latency: float, last_offset: int | None) -> int | None:
        """Delay the mic (delayed output, OBS sync offset) by the measured latency so lips match voice."""
        if self.delayed_mic is not None and self.settings.audio.delay_auto:
            self.delayed_mic.delay_s = min(latency, 10.0)
        ms = int(round(latency * 1000))
        if self.obs is not None and self.settings.obs.sync_offset_auto and (
                last_offset is None or abs(ms - last_offset) > 20):
            self.obs.set_sync_offset_ms(ms)
            return ms
        return last_offset

    def _close_all(self) -> None:
        close = getattr(self.stream, "close", None)     # the pipelined stream's step thread
        if close is not None:
            close()
        for name in ("source", "live", "delayed_mic"):
            part = getattr(self, name, None)
            if part is not None:
                try:
                    part.close()
                except Exception as exc:
                    log.warning("closing %s failed: %s", name, exc)
                setattr(self, name, None)
        rec = getattr(self, "recorder", None)
        if rec is not None:
            self.recorder = None
            self._finish_recording(rec)     # also after an engine error: what was recorded is kept
        obs = getattr(self, "obs", None)
        if obs is not None:
            try:
                obs.restore()
                obs.close()
            except Exception as exc:
                log.warning("OBS restore failed: %s", exc)
            self.obs = None

    def _finish_recording(self, rec, failure: BaseException | None = None) -> None:
        """Close the file so it plays (audio cut to its frames); one warning if it stopped early."""
        info = self.recording
        if failure is not None:
            log.debug("recording failed", exc_info=failure)
            info.stopped = str(failure) if isinstance(failure, AvatarCamError) else f"{type(failure).__name__}: {failure}"
        try:
            rec.close()
        except Exception as exc:
            log.debug("closing the recording failed", exc_info=exc)
            info.stopped = info.stopped or f"{type(exc).__name__}: {exc}"
            info.frames = 0
            self._warn(f"recording to {info.path} failed and could not be finished ({info.stopped}); "
                       "free some space or record elsewhere")
            return
        info.frames = rec.frames_sent
        info.seconds = rec.duration_s
        info.written = rec.frames_sent > 0
        if failure is not None:
            kept = f"kept the first {info.seconds:.1f} s" if info.written else "nothing was written"
            self._warn(f"recording to {info.path} stopped ({info.stopped}); {kept}; the stream goes on")

    # -- stats -----------------------------------------------------------------------------------
    def stats(self) -> SessionStats:
        if not hasattr(self, "_stats"):
            return SessionStats()
        if self._done.is_set() and hasattr(self, "_final_stats"):
            return self._final_stats
        st = self._stats
        st.state = self._state
        stream = self.stream
        if stream is None or not hasattr(self, "clock"):   # start failed before the stream was up
            return dataclasses.replace(st)
        st.elapsed_s = time.monotonic() - getattr(self, "_t_start", time.monotonic())
        st.frames_generated = self._frame_index
        st.frames_shown = self._shown
        times = list(self._shown_times)
        st.output_fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else 0.0
        recent = stream.step_ms[-200:]
        st.step_ms_p50, st.step_ms_p95 = percentile(recent, 50), percentile(recent, 95)
        st.decode_ms_p50 = percentile(stream.decode_ms[-200:], 50)
        st.audio_queue = self.audio_q.qsize()
        st.frame_queue = self.frame_q.qsize()
        st.latency_s = float(np.median(self._latencies)) if self._latencies else None
        st.expected_latency_s = stream.expected_latency_s
        src = getattr(self, "source", None)
        st.mic_faults = getattr(src, "faults", 0) if src is not None else st.mic_faults
        live = getattr(self, "live", None)
        st.sink_errors = getattr(live, "errors", 0) if live is not None else st.sink_errors
        obs = getattr(self, "obs", None)
        st.obs_status = obs.status if obs is not None else st.obs_status
        st.audio_s = self.clock.samples / SAMPLE_RATE
        st.fps = stream.fps
        engine = getattr(self, "engine", None)
        if engine is not None:
            bs = getattr(self, "backend_stats", None)
            backend = engine.backend if bs is None or bs.active == bs.requested else f"{bs.active} ({bs.requested} " \
                f"failed: {bs.reason})"
            st.engine = f"{engine.device} {engine.dtype} {backend}" + \
                (", pipelined on 2 cores" if getattr(self, "pipelined", False) else "")
        if st.elapsed_s > 0:
            st.realtime_factor = self.clock.samples / SAMPLE_RATE / st.elapsed_s
        return dataclasses.replace(st)

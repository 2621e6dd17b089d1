"""The live session: microphone or file -> engine -> paced frames -> camera / file / preview, plus OBS.

One object that the CLI and the UI both drive (`start()`, `stop()`, `wait()`, `stats()`, events);
they never see threads. This file is the lifecycle and the events; one stream's parts (capture,
engine worker, pacer, outputs) are `avatarcam.live.LiveRun`, its numbers `avatarcam.stats`.
Error and warning events carry the exception, so a front end matches on its type.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from engine.config import SAMPLE_RATE

from .config import Settings
from .errors import AvatarCamError, ModelError
from .live import LiveRun
from .stats import EnginePace, SessionStats
from .stream_options import SessionOptions

if TYPE_CHECKING:
    from engine.toon.identity import Identity

log = logging.getLogger(__name__)


@dataclass
class SessionEvent:
    kind: str           # "state" | "frame" | "stats" | "info" | "obs" | "warning" | "error"
    data: Any = None    # "error": the exception; "warning": a SessionWarning


@dataclass(frozen=True)
class SessionWarning:
    """A problem the stream survives; `cause` is the exception behind it, when there is one."""

    text: str
    cause: BaseException | None = None

    def __str__(self) -> str:
        return self.text


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
        self._muted = False
        self._run: LiveRun | None = None
        self._final: SessionStats | None = None
        self._t_start = 0.0
        self.error: BaseException | None = None

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

    def _warn(self, message: str, cause: BaseException | None = None) -> None:
        log.warning("%s", message)
        self._emit("warning", SessionWarning(message, cause))

    def _set_state(self, state: str) -> None:
        self._state = state
        self._emit("state", state)

    @property
    def state(self) -> str:
        return self._state

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    # -- what the running stream is --------------------------------------------------------------
    @property
    def stream(self):
        return self._run.stream if self._run is not None and self._run.engine is not None else None

    @property
    def reference(self) -> np.ndarray | None:
        """The avatar image as the model sees it."""
        return self._run.worker.reference if self._run is not None else None

    @property
    def delayed_mic(self):
        return self._run.delayed_mic if self._run is not None else None

    @property
    def recording(self):
        """What happened to the mp4 (None without --out)."""
        return self._run.recording if self._run is not None else None

    @property
    def realtime(self) -> bool:
        """Whether the input was paced like a live microphone (latency and dropped audio mean something)."""
        return self._run.realtime if self._run is not None else self.options.audio_file is None

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the model, open sources and sinks, start the threads. Raises AvatarCamError on bad setup."""
        if self.running:
            raise AvatarCamError("the session is already streaming; stop it first")
        self._set_state("starting")
        self._stop.clear()
        self.error = None
        self._final = None
        self._run = None
        try:
            if self.options.avatar_image is None:
                self.options.avatar_image, self.options.avatar_identity = _default_avatar()
            image = self.options.avatar_image
            self._run = LiveRun(self.settings, self.options, image, self._emit, self._warn)
        except BaseException as exc:
            self._set_state("error")
            if isinstance(exc, AvatarCamError):
                raise
            raise ModelError(f"could not start the stream: {exc}") from exc
        self._run.capture.muted = self._muted
        self._done.clear()
        self._t_start = time.monotonic()
        for name, run in self._run.threads():
            t = threading.Thread(target=self._guard(run), name=f"avatarcam-{name}", daemon=True)
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

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the stream ends (end of a file, --duration, stop() or an error)."""
        return self._done.wait(timeout)

    def switch_avatar(self, image: np.ndarray, identity: Identity | None = None) -> None:
        """Use another avatar: at once if streaming (the engine restarts its window), else next start.
        `identity`: a cartoon avatar's rig (`Avatar.identity()`), drawn sharp by the engine.
        The camera's letterbox and, with OBS keying on, OBS's keyed source follow it (see
        `avatarcam.keying`); OBS is updated on its own thread, so a slow or lost OBS never holds this up."""
        self.options.avatar_image, self.options.avatar_identity = image, identity
        run = self._run
        if self.running and run is not None:
            run.worker.switch(image, identity)
            run.follow_avatar(identity)

    def mute(self, on: bool = True) -> None:
        """Mute the microphone: the avatar hears silence (mouth closes) and the delayed output goes quiet."""
        self._muted = on
        if self._run is not None:
            self._run.capture.muted = on
            if self._run.delayed_mic is not None:
                self._run.delayed_mic.mute(on)

    @property
    def muted(self) -> bool:
        return self._muted

    def set_noise_gate(self, threshold_db: float | None) -> None:
        """Move the noise gate (dBFS; None: off) for this stream and the next, as the Devices page meter is dragged."""
        self.settings.audio.noise_gate_db = threshold_db
        if self._run is not None:
            self._run.capture.set_gate(threshold_db)

    # -- threads ---------------------------------------------------------------------------------
    def _guard(self, run: Callable[[threading.Event], None]) -> Callable[[], None]:
        def guarded():
            try:
                run(self._stop)
            except BaseException as exc:  # report and stop: never a silent dead thread
                log.exception("session thread %s failed", threading.current_thread().name)
                self.error = exc
                self._emit("error", exc)
                self._stop.set()
        return guarded

    def _supervise(self) -> None:
        """Periodic stats, OBS / delayed-mic sync, and the orderly shutdown once the threads end."""
        last_offset = None
        pace = EnginePace()
        while any(t.is_alive() for t in self._threads):
            self._stop.wait(0.5)
            if self._run.realtime:
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
        self._run.close()
        self._threads.clear()
        final = self.stats()
        final.state = "error" if self.error else "stopped"
        self._final = final
        self._set_state(final.state)
        self._done.set()

    def _check_pace(self, pace: EnginePace) -> None:
        """Degrade visibly: when the engine stays below real time, one warning with the change that helps."""
        run = self._run
        change = pace.update(time.monotonic(), run.worker.samples / SAMPLE_RATE)
        if change == "behind":
            run.counters.behind = f"the engine runs at {pace.rate:.2f}x real time, so audio is skipped: " \
                f"{self._advice()}"
            self._warn(run.counters.behind)
        elif change == "recovered":
            run.counters.behind = ""
            self._emit("info", "the engine keeps up with real time again")

    def _advice(self) -> str:
        """The one change most likely to help here."""
        engine, wanted = self._run.engine, self.settings.engine
        if engine.choice.device == "cpu" and (wanted.backend != "auto" or wanted.dtype != "auto"):
            return "set engine.backend=auto and engine.dtype=auto (the fastest variant measured on this CPU)"
        if engine.choice.device == "cpu" and not engine.pipelined:
            return "give AvatarCam a second core (close other programs), so decoding runs beside the model"
        return "close programs that keep the CPU busy (a game, a browser, a second encoder in OBS)"

    def _sync_latency(self, latency: float, last_offset: int | None) -> int | None:
        """Delay the mic (delayed output, OBS sync offset) by the measured latency so lips match voice."""
        run = self._run
        if run.delayed_mic is not None and self.settings.audio.delay_auto:
            run.delayed_mic.delay_s = min(latency, 10.0)
        ms = int(round(latency * 1000))
        if run.obs is not None and self.settings.obs.sync_offset_auto and (
                last_offset is None or abs(ms - last_offset) > 20):
            run.obs.set_sync_offset_ms(ms)
            return ms
        return last_offset

    # -- stats -----------------------------------------------------------------------------------
    def stats(self) -> SessionStats:
        if self._done.is_set() and self._final is not None:
            return self._final
        if self._run is None:
            return SessionStats(state=self._state)
        return self._run.snapshot(self._state, time.monotonic() - self._t_start)


def _default_avatar() -> tuple[np.ndarray, Identity | None]:
    """(picture, cartoon rig or None) of the library's default avatar."""
    try:
        from .avatars import AvatarLibrary
        avatar = AvatarLibrary().default()
        return avatar.load_image(), avatar.identity()
    except Exception as exc:  # library missing or broken: draw one
        log.debug("default avatar from the library failed (%s); drawing one", exc)
        from engine.toon import random_identity, render_portrait
        return render_portrait(random_identity(0), 512), random_identity(0)

"""Background work for the UI: slow calls off the Qt thread, results back on it through signals.

Why plain Python threads and signal relays: the session, the microphone and OBS already run their
own threads; the UI only needs "run this, then tell me on my thread". A signal emitted from another
thread to a QObject that lives on the Qt thread is queued by Qt, so widgets are only ever touched
on the Qt thread.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, Signal

from avatarcam.session import SessionEvent

log = logging.getLogger(__name__)


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)


class Runner(QObject):
    """Runs callables on daemon threads; ``on_done(result)`` / ``on_error(exc)`` run on the Qt thread."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._live: set[_Relay] = set()
        self._threads: list[threading.Thread] = []

    def run(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None, name: str = "ui-worker") -> threading.Thread:
        relay = _Relay(self)  # parented: lives on the Qt thread, so its slots run there
        self._live.add(relay)

        def finish(value, callback):
            self._live.discard(relay)
            relay.deleteLater()
            if callback is not None:
                callback(value)

        relay.done.connect(lambda v: finish(v, on_done))
        relay.failed.connect(lambda e: finish(e, on_error))

        def work():
            try:
                result = fn()
            except BaseException as exc:  # reported to the UI; never a dead thread with a lost error
                log.debug("background task %s failed: %s", name, exc, exc_info=True)
                relay.failed.emit(exc)
            else:
                relay.done.emit(result)

        t = threading.Thread(target=work, name=name, daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        return t

    def busy(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def join(self, timeout: float = 10.0) -> None:
        for t in list(self._threads):
            t.join(timeout)


class LevelMeter(QObject):
    """Reads a real microphone on its own thread and reports its level about 20 times a second."""

    level = Signal(float)        # dBFS
    failed = Signal(str)         # a message for the user
    opened = Signal(str)         # the device name actually opened

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self.last_db = -90.0
        self.level.connect(self._remember)

    def _remember(self, db: float) -> None:
        self.last_db = db

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, device: int | str | None) -> None:
        self.stop()
        stop = threading.Event()
        self._stop = stop
        self._thread = threading.Thread(target=self._read, args=(device, stop), name="ui-level-meter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the reader to finish; it closes the device on its own thread (closing can take a while)."""
        if self._stop is not None:
            self._stop.set()
        self._stop = None

    def wait(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _read(self, device, stop: threading.Event) -> None:
        from avatarcam.errors import AvatarCamError
        from avatarcam.level import MicLevels
        try:
            mic = MicLevels(device).open()
        except AvatarCamError as exc:
            self.failed.emit(str(exc))
            return
        try:
            self.opened.emit(mic.name)
            while not stop.is_set():
                db = mic.read(timeout=0.2)
                if db is not None:
                    self.level.emit(db)
        finally:
            mic.close()


class SessionBridge(QObject):
    """Turns Session events (on session threads) into Qt signals; keeps only the newest preview frame."""

    state = Signal(str)
    stats = Signal(object)
    warning = Signal(object)     # avatarcam.session.SessionWarning
    error = Signal(object)       # the exception that stopped the stream
    obs = Signal(str)
    frame_ready = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._pending = False
        self.frames_received = 0

    def handle(self, event: SessionEvent) -> None:
        """The Session listener: called on session threads."""
        kind = event.kind
        if kind == "frame":
            with self._lock:
                self._frame = event.data
                self.frames_received += 1
                if self._pending:
                    return        # the UI has not drawn the previous one yet: just replace it
                self._pending = True
            self.frame_ready.emit()
        elif kind == "state":
            self.state.emit(str(event.data))
        elif kind == "stats":
            self.stats.emit(event.data)
        elif kind == "warning":
            self.warning.emit(event.data)
        elif kind == "error":
            self.error.emit(event.data)
        elif kind == "obs":
            self.obs.emit(str(event.data))

    def take_frame(self) -> np.ndarray | None:
        with self._lock:
            frame, self._pending = self._frame, False
            return frame

"""The app's one brain: settings, the avatar library and the Session, shared by window and tray.

Why a controller: the tray menu and the window both start/stop the stream and switch avatars; one
object owns the Session so they can never disagree about what is running. Slow calls (model load,
stop) run on worker threads; everything this object emits arrives on the Qt thread.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from avatarcam.avatars import Avatar, AvatarLibrary
from avatarcam.config import Settings, load_settings, save_settings
from avatarcam.errors import AvatarCamError, DeviceError, ModelError, ObsError, StreamSettingsError
from avatarcam.session import Session, SessionStats, SessionWarning
from avatarcam.stream_options import SessionOptions, model_for, stream_options

from .hotkey_actions import HotkeyActions
from .workers import Runner, SessionBridge

log = logging.getLogger(__name__)

BUSY_STATES = ("starting", "stopping")


# the page that fixes each kind of error (the banner offers a button to open it); first match wins
FIX_PAGES: tuple[tuple[type[BaseException], str], ...] = (
    (ObsError, "obs"), (DeviceError, "devices"), (StreamSettingsError, "anchors"), (ModelError, "avatars"))


def friendly(exc: BaseException) -> str:
    """A message for a banner: user errors as written, anything else without the Python noise."""
    if isinstance(exc, AvatarCamError):
        return str(exc)
    return f"The stream stopped because of an unexpected problem ({type(exc).__name__}: {exc}). " \
           "The log has the details."


def fix_page(exc: BaseException | None) -> str | None:
    """Which page fixes this error, by its type; None when no page does."""
    return next((page for kind, page in FIX_PAGES if isinstance(exc, kind)), None)


class AppController(QObject):
    state_changed = Signal(str)            # idle | starting | live | stopping | error
    stats_changed = Signal(object)         # SessionStats
    message = Signal(str, str, object)     # level (error|warning|info), text, page to fix it (or None)
    settings_changed = Signal()
    avatars_changed = Signal()

    def __init__(self, settings: Settings | None = None, settings_path: str | Path | None = None,
                 library: AvatarLibrary | None = None, audio_file: str | Path | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.settings_path = Path(settings_path) if settings_path is not None else None
        self.settings = settings if settings is not None else load_settings(self.settings_path)
        self.library = library if library is not None else AvatarLibrary()
        self.audio_file: Path | None = Path(audio_file) if audio_file else None
        self.runner = Runner(self)
        self.bridge = SessionBridge(self)
        self.hotkeys = HotkeyActions(self)
        self.session: Session | None = None
        self.state = "idle"
        self.last_error: str | None = None
        self.last_stats = SessionStats()
        self.bridge.state.connect(self._on_session_state)
        self.bridge.stats.connect(self._on_stats)
        self.bridge.warning.connect(self._on_session_warning)
        self.bridge.error.connect(self._on_session_error)

    # -- settings ------------------------------------------------------------------------------
    def save(self) -> bool:
        """Write the settings file; a bad value becomes a banner, never an exception."""
        try:
            path = save_settings(self.settings, self.settings_path)
        except AvatarCamError as exc:
            self.message.emit("error", f"Settings not saved: {exc}", None)
            return False
        except OSError as exc:
            self.message.emit("error", f"Settings not saved: cannot write {self.settings_path}: {exc}", None)
            return False
        log.debug("settings saved to %s", path)
        self.settings_changed.emit()
        return True

    # -- avatars -------------------------------------------------------------------------------
    def current_avatar(self) -> Avatar | None:
        current = self.settings.avatar.current
        if current:
            try:
                return self.library.get(current)
            except AvatarCamError:
                pass
        avatars = self.library.list()
        return avatars[0] if avatars else None

    def use_avatar(self, name: str) -> None:
        """Make ``name`` the current avatar; a running stream switches to it at once."""
        try:
            avatar = self.library.get(name)
        except AvatarCamError as exc:
            self.message.emit("error", str(exc), "avatars")
            return
        self.settings.avatar.current = avatar.name
        self.save()
        if self.session is not None and self.session.running:
            try:
                self.session.switch_avatar(avatar.load_image(), avatar.identity())
            except Exception as exc:  # unreadable image file: say so, keep streaming the old one
                self.message.emit("error", f"Could not switch to {avatar.name!r}: {exc}", "avatars")
                return
            self.message.emit("info", f"Switched to {avatar.name}.", None)
        self.avatars_changed.emit()

    def set_noise_gate(self, db: float | None) -> None:
        """Save the noise gate's threshold (None: off) and move it in a running stream, without a restart."""
        self.settings.audio.noise_gate_db = db
        self.save()
        if self.session is not None and self.session.running:
            self.session.set_noise_gate(db)

    def model_name(self) -> str:
        return model_for(self.settings, None, self.current_avatar())

    # -- stream options ------------------------------------------------------------------------
    def build_options(self, settings: Settings | None = None) -> SessionOptions:
        """The stream `avatarcam run` would build from these settings, plus the app's inputs and preview."""
        s = settings if settings is not None else self.settings
        record = Path(s.output.record).expanduser() if s.output.record else None
        options = stream_options(s, library=self.library)
        return dataclasses.replace(options, audio_file=self.audio_file, record=record, preview=True, realtime=True)

    # -- start / stop --------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.state in BUSY_STATES

    @property
    def live(self) -> bool:
        return self.state == "live"

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def toggle(self) -> None:
        if self.state in ("live",):
            self.stop()
        elif self.state in ("idle", "error"):
            self.start()

    def start(self) -> None:
        if self.busy or self.live:
            return
        self.last_error = None
        self._set_state("starting")
        settings = copy.deepcopy(self.settings)

        def work() -> Session:     # reads the avatar and the model card, loads the model: off the Qt thread
            session = Session(settings, self.build_options(settings))
            session.on_event(self.bridge.handle)
            self.session = session
            session.start()
            return session

        self.runner.run(work, on_done=self._started, on_error=self._fail, name="ui-start")

    def _started(self, session: Session) -> None:
        if session is self.session and session.running:
            self._set_state("live")
            self.message.emit("clear", "", None)

    def _fail(self, exc: BaseException) -> None:
        if not isinstance(exc, AvatarCamError):
            log.error("starting the stream failed", exc_info=exc)
        self.last_error = friendly(exc)
        self._set_state("error")
        self.message.emit("error", self.last_error, fix_page(exc))

    def stop(self) -> None:
        session = self.session
        if session is None or not session.running or self.state == "stopping":
            return
        self._set_state("stopping")

        def done(_=None) -> None:
            if session.running:
                self.message.emit("warning", "The stream is taking long to stop; it will finish in the background.",
                                  None)
            if self.state == "stopping":
                self._set_state("error" if session.error else "idle")

        self.runner.run(session.stop, on_done=done, on_error=lambda e: done(), name="ui-stop")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the stream and wait (quitting the app)."""
        self.hotkeys.stop()
        if self.session is not None and self.session.running:
            self.session.stop(timeout)
        self.runner.join(timeout)

    # -- session events (on the Qt thread) -----------------------------------------------------
    def _on_session_state(self, state: str) -> None:
        if state == "live" and self.state == "starting":
            return  # the start worker confirms once start() has returned
        if state == "stopped" and self.state in ("live", "stopping"):
            self._set_state("idle")
        elif state == "error" and self.state in ("live", "stopping"):
            self._set_state("error")

    def _on_session_error(self, exc: BaseException) -> None:
        self.last_error = friendly(exc)
        self.message.emit("error", self.last_error, fix_page(exc))

    def _on_session_warning(self, warning: SessionWarning) -> None:
        self.message.emit("warning", warning.text, fix_page(warning.cause))

    def _on_stats(self, stats: SessionStats) -> None:
        self.last_stats = stats
        self.stats_changed.emit(stats)

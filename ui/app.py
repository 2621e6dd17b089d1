"""Entry point of the desktop app (`avatarcam tray`): tray icon when the desktop has one, else a window."""
from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from avatarcam.config import load_settings
from avatarcam.errors import AvatarCamError

from . import theme
from .controller import AppController
from .tray import Tray
from .window import MainWindow

log = logging.getLogger(__name__)


@dataclass
class App:
    """Everything one running app holds (tests and the screenshot script build it the same way)."""

    qapp: QApplication
    controller: AppController
    window: MainWindow
    tray: Tray | None

    def quit(self) -> None:
        self.window.quitting = True
        self.window.remember_geometry()
        self.controller.shutdown()
        if self.tray is not None:
            self.tray.hide()
        self.window.close()
        self.qapp.quit()


def build_app(settings_path: str | Path | None = None, audio_file: str | Path | None = None,
              show: bool = True, settings=None) -> App:
    """Create the controller, window and (when there is a system tray) the tray icon."""
    qapp = QApplication.instance() or QApplication(sys.argv[:1])
    qapp.setApplicationName("AvatarCam")
    qapp.setApplicationDisplayName("AvatarCam")
    qapp.setDesktopFileName("avatarcam")
    if settings is None:
        settings = load_settings(settings_path)
    theme.apply_theme(qapp, settings.ui.theme)
    controller = AppController(settings, settings_path, audio_file=audio_file)
    has_tray = QSystemTrayIcon.isSystemTrayAvailable()
    window = MainWindow(controller, tray_available=has_tray)
    app = App(qapp, controller, window, None)
    if has_tray:
        app.tray = Tray(controller, window, app.quit)
        app.tray.show()
        qapp.setQuitOnLastWindowClosed(False)
    else:
        log.info("no system tray; the window is the whole app")
        qapp.setQuitOnLastWindowClosed(True)
        qapp.aboutToQuit.connect(controller.shutdown)
    if show:
        window.show()
    controller.hotkeys.restart()   # after the window: a problem shows in its banner
    return app


def main(settings_path: str | Path | None = None, audio_file: str | Path | None = None) -> int:
    """Run the app until Quit; returns the exit code."""
    try:
        app = build_app(settings_path, audio_file=audio_file)
    except AvatarCamError as exc:  # e.g. a broken settings file: say so, no traceback
        print(f"avatarcam: {exc}", file=sys.stderr)
        return 2
    # Ctrl+C in the terminal quits cleanly: Python only sees signals while it runs, so wake it up.
    signal.signal(signal.SIGINT, lambda *_: app.quit())
    timer = QTimer()
    timer.start(250)
    timer.timeout.connect(lambda: None)
    return app.qapp.exec()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))

"""The tray icon: start/stop and avatar switching without opening the window; colour = stream state."""
from __future__ import annotations

import logging

from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from . import icons, theme
from .controller import AppController
from .window import STATE_TEXT, status_color

log = logging.getLogger(__name__)


class Tray(QSystemTrayIcon):
    def __init__(self, controller: AppController, window: QWidget, quit_app, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.window = window
        self.menu = QMenu()
        c = theme.current()
        self.toggle_action = QAction("Start streaming", self.menu)
        self.toggle_action.triggered.connect(controller.toggle)
        self.menu.addAction(self.toggle_action)
        self.avatar_menu = self.menu.addMenu(icons.icon("avatar", c.muted), "Avatar")
        self.avatar_menu.aboutToShow.connect(self.fill_avatars)
        self.avatar_group = QActionGroup(self.avatar_menu)
        self.avatar_group.setExclusive(True)
        self.menu.addSeparator()
        self.status_action = QAction("Status: Idle", self.menu)
        self.status_action.setEnabled(False)
        self.menu.addAction(self.status_action)
        self.menu.addSeparator()
        self.open_action = QAction(icons.icon("window", c.muted), "Open window", self.menu)
        self.open_action.triggered.connect(self.show_window)
        self.menu.addAction(self.open_action)
        self.quit_action = QAction(icons.icon("quit", c.muted), "Quit AvatarCam", self.menu)
        self.quit_action.triggered.connect(quit_app)
        self.menu.addAction(self.quit_action)
        self.setContextMenu(self.menu)
        self.activated.connect(self._activated)
        controller.state_changed.connect(self.show_state)
        controller.stats_changed.connect(self._on_stats)
        controller.avatars_changed.connect(self.fill_avatars)
        self.fill_avatars()
        self.show_state(controller.state)

    def fill_avatars(self) -> None:
        """The quick switch submenu: every avatar, the current one checked."""
        self.avatar_menu.clear()
        for action in self.avatar_group.actions():
            self.avatar_group.removeAction(action)
        current = self.controller.current_avatar()
        avatars = self.controller.library.list()
        for a in avatars:
            action = QAction(a.name, self.avatar_menu)
            action.setCheckable(True)
            action.setChecked(current is not None and a.slug == current.slug)
            action.triggered.connect(lambda _=False, name=a.name: self.controller.use_avatar(name))
            self.avatar_group.addAction(action)
            self.avatar_menu.addAction(action)
        if not avatars:
            empty = self.avatar_menu.addAction("No avatars yet")
            empty.setEnabled(False)

    def show_state(self, state: str) -> None:
        self.setIcon(icons.app_icon(status_color(state), theme.current().accent))
        self.toggle_action.setText("Stop streaming" if state == "live" else "Start streaming")
        self.toggle_action.setIcon(icons.icon("stop" if state == "live" else "play", theme.current().muted))
        self.toggle_action.setEnabled(state not in ("starting", "stopping"))
        self.status_action.setText(f"Status: {STATE_TEXT.get(state, state)}")
        self._tooltip()

    def _on_stats(self, stats) -> None:
        """Amber while the engine is behind real time (the Live page says why and what helps)."""
        behind = self.controller.state == "live" and bool(getattr(stats, "behind", ""))
        if behind != getattr(self, "_behind", False):
            self._behind = behind
            key = "busy" if behind else self.controller.state
            self.setIcon(icons.app_icon(status_color(key), theme.current().accent))
        self._tooltip()

    def _tooltip(self) -> None:
        c = self.controller
        text = f"AvatarCam — {STATE_TEXT.get(c.state, c.state).lower()}"
        if c.state == "live":
            st = c.last_stats
            if st.output_fps:
                text += f" · {st.output_fps:.0f} fps"
            if st.latency_s is not None:
                text += f" · {st.latency_s * 1000:.0f} ms delay"
            if getattr(st, "behind", ""):
                text += " · behind real time: see the Live page"
        elif c.state == "error" and c.last_error:
            text += f": {c.last_error[:120]}"
        self.setToolTip(text)

    def show_window(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def _activated(self, reason) -> None:
        if reason in (QSystemTrayIcon.Trigger, QSystemTrayIcon.DoubleClick):
            if self.window.isVisible():
                self.window.hide()
            else:
                self.show_window()

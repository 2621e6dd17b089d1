"""The main window: navigation on the left, one page at a time, the stream's state always in view."""
from __future__ import annotations

import logging

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (QApplication, QComboBox, QFrame, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QMainWindow, QProgressBar, QPushButton, QStackedWidget, QVBoxLayout, QWidget)

from . import icons, theme
from .controller import AppController
from .pages.anchors import AnchorsPage
from .pages.avatars import AvatarsPage
from .pages.devices import DevicesPage
from .pages.hotkeys import HotkeysPage
from .pages.live import LivePage
from .pages.obs import ObsPage
from .theme import GRID
from .widgets import Banner

log = logging.getLogger(__name__)

NAV = (("live", "Live", "live"), ("avatars", "Avatars", "avatar"), ("anchors", "Anchors", "anchors"),
       ("devices", "Devices", "mic"), ("obs", "OBS", "obs"), ("hotkeys", "Hotkeys", "keys"))
STATE_TEXT = {"idle": "Idle", "starting": "Starting…", "live": "Live", "stopping": "Stopping…", "error": "Error"}
NO_TRAY_NOTE = "No system tray on this desktop: closing this window quits AvatarCam."
THEMES = (("Follow system", "system"), ("Light", "light"), ("Dark", "dark"))


def status_color(state: str) -> str:
    key = {"starting": "busy", "stopping": "busy"}.get(state, state)
    return theme.STATUS_COLORS.get(key, theme.STATUS_COLORS["idle"])


class MainWindow(QMainWindow):
    def __init__(self, controller: AppController, tray_available: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.tray_available = tray_available
        self.quitting = False
        self.setWindowTitle("AvatarCam")
        self.setWindowIcon(icons.app_icon(status_color("idle")))
        self.setMinimumSize(QSize(960, 640))

        central = QWidget()
        central.setObjectName("central")
        root = QHBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._sidebar())

        content = QVBoxLayout()
        content.setContentsMargins(0, 0, 0, 0)
        content.setSpacing(0)
        content.addWidget(self._topbar())
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setFixedHeight(3)
        self.busy_bar.hide()
        content.addWidget(self.busy_bar)
        self.banner = Banner()
        self.banner.action.connect(self.show_page)
        content.addWidget(self.banner.area)

        self.stack = QStackedWidget()
        self.pages = {
            "live": LivePage(controller), "avatars": AvatarsPage(controller), "anchors": AnchorsPage(controller),
            "devices": DevicesPage(controller), "obs": ObsPage(controller), "hotkeys": HotkeysPage(controller)}
        for page in self.pages.values():
            self.stack.addWidget(page)
        content.addWidget(self.stack, 1)
        root.addLayout(content, 1)
        self.setCentralWidget(central)

        self.tray_note = QLabel("" if tray_available else NO_TRAY_NOTE)
        self.statusBar().addPermanentWidget(self.tray_note)
        self.statusBar().setSizeGripEnabled(False)

        controller.state_changed.connect(self._on_state)
        controller.message.connect(self._on_message)
        controller.avatars_changed.connect(self._update_topbar)
        controller.stats_changed.connect(self._on_stats)
        self.nav.setCurrentRow(0)
        self._on_state(controller.state)
        self.restore_geometry()

    # -- layout pieces --------------------------------------------------------------------------
    def _sidebar(self) -> QFrame:
        side = QFrame()
        side.setObjectName("sidebar")
        side.setFixedWidth(27 * GRID)
        col = QVBoxLayout(side)
        col.setContentsMargins(2 * GRID, 3 * GRID, 2 * GRID, 2 * GRID)
        col.setSpacing(2 * GRID)
        brand = QHBoxLayout()
        brand.setSpacing(GRID + GRID // 2)
        self.logo = QLabel()
        self.logo.setFixedSize(32, 32)
        brand.addWidget(self.logo)
        title = QLabel("AvatarCam")
        title.setObjectName("appTitle")
        brand.addWidget(title, 1)
        col.addLayout(brand)
        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setIconSize(QSize(20, 20))
        self.nav.setSpacing(0)
        self.nav.setFocusPolicy(Qt.NoFocus)
        for key, label, _ in NAV:
            item = QListWidgetItem(label)
            item.setData(Qt.UserRole, key)
            item.setSizeHint(QSize(0, 5 * GRID))
            self.nav.addItem(item)
        self.nav.currentRowChanged.connect(lambda row: self.stack.setCurrentIndex(row))
        col.addWidget(self.nav, 1)
        col.addWidget(QLabel("Appearance"))
        self.theme_box = QComboBox()
        for label, value in THEMES:
            self.theme_box.addItem(label, value)
        self.theme_box.setCurrentIndex(max(0, self.theme_box.findData(self.controller.settings.ui.theme)))
        self.theme_box.currentIndexChanged.connect(self._theme_picked)
        col.addWidget(self.theme_box)
        self._paint_icons()
        return side

    def _topbar(self) -> QFrame:
        bar = QFrame()
        bar.setObjectName("topbar")
        row = QHBoxLayout(bar)
        row.setContentsMargins(3 * GRID, 2 * GRID, 3 * GRID, 2 * GRID)
        row.setSpacing(GRID + GRID // 2)
        self.status_dot = QLabel()
        self.status_dot.setFixedSize(12, 12)
        row.addWidget(self.status_dot)
        self.status_text = QLabel("Idle")
        self.status_text.setObjectName("sectionTitle")
        row.addWidget(self.status_text)
        self.status_detail = QLabel("")
        self.status_detail.setObjectName("note")
        row.addWidget(self.status_detail, 1)
        self.start_btn = QPushButton("Start streaming")
        self.start_btn.setObjectName("start")
        self.start_btn.setMinimumWidth(22 * GRID)
        self.start_btn.setIconSize(QSize(14, 14))
        self.start_btn.clicked.connect(self.controller.toggle)
        row.addWidget(self.start_btn)
        return bar

    def _paint_icons(self) -> None:
        c = theme.current()
        for i, (_, _, icon_name) in enumerate(NAV):
            self.nav.item(i).setIcon(icons.icon(icon_name, c.muted))
        self.logo.setPixmap(icons.app_pixmap(status_color(self.controller.state), 32, c.accent))

    # -- behaviour ------------------------------------------------------------------------------
    def show_page(self, key: str) -> None:
        for i, (k, _, _) in enumerate(NAV):
            if k == key:
                self.nav.setCurrentRow(i)
                return

    def current_page(self) -> str:
        return NAV[self.nav.currentRow()][0]

    def _theme_picked(self) -> None:
        mode = self.theme_box.currentData()
        self.controller.settings.ui.theme = mode
        self.controller.save()
        theme.apply_theme(QApplication.instance(), mode)
        self._paint_icons()
        self._on_state(self.controller.state)
        for page in self.pages.values():
            page.update()

    def _update_topbar(self) -> None:
        c = self.controller
        state = c.state
        avatar = c.current_avatar()
        name = avatar.name if avatar else "default avatar"
        if state == "live":
            st = c.last_stats
            fps = f"{st.output_fps:.0f} fps" if st.output_fps else "warming up"
            lat = f" · {st.latency_s * 1000:.0f} ms delay" if st.latency_s is not None else ""
            detail = f"{name} · {fps}{lat}"
        elif state == "starting":
            detail = f"Loading {c.model_name()} for {name}…"
        elif state == "error":
            detail = "see the message below"
        else:
            detail = f"{name} · {c.model_name()}"
        self.status_detail.setText(detail)

    def _on_state(self, state: str) -> None:
        color = status_color(state)
        self.status_dot.setPixmap(icons.dot_pixmap(color, 12))
        self.status_text.setText(STATE_TEXT.get(state, state))
        self.setWindowIcon(icons.app_icon(color))
        self.logo.setPixmap(icons.app_pixmap(color, 32, theme.current().accent))
        live = state == "live"
        self.start_btn.setProperty("live", live)
        self.start_btn.style().unpolish(self.start_btn)
        self.start_btn.style().polish(self.start_btn)
        label = {"starting": "Starting…", "stopping": "Stopping…", "live": "Stop streaming"}.get(state,
                                                                                                 "Start streaming")
        self.start_btn.setText(label)
        self.start_btn.setIcon(icons.icon("stop" if live else "play", "#FFFFFF" if live else theme.current().accent_text))
        self.start_btn.setEnabled(state not in ("starting", "stopping"))
        self.busy_bar.setVisible(state in ("starting", "stopping"))
        if state == "live" and self.banner.level == "error":
            self.banner.clear()
        self._update_topbar()

    def _on_stats(self, _stats) -> None:
        if self.controller.state == "live":
            self._update_topbar()

    def _on_message(self, level: str, text: str, page) -> None:
        if level == "clear":  # a new stream started: old errors are stale, fresh warnings are not
            if self.banner.level == "error":
                self.banner.clear()
            return
        if level == "info":
            self.statusBar().showMessage(text, 5000)
            return
        if self.banner.level == "error" and level == "warning" and self.banner.isVisible():
            return  # an error outranks a warning
        title = next((label for k, label, _ in NAV if k == page), page or "")
        self.banner.show_message(level, text, page, title)

    # -- geometry -------------------------------------------------------------------------------
    def restore_geometry(self) -> None:
        data = self.controller.settings.ui.geometry
        if data:
            try:
                if self.restoreGeometry(QByteArray.fromBase64(data.encode("ascii"))):
                    return
            except (UnicodeEncodeError, ValueError):
                pass
            log.info("saved window geometry unusable; using the default size")
        self.resize(1120, 760)

    def remember_geometry(self) -> None:
        self.controller.settings.ui.geometry = bytes(self.saveGeometry().toBase64()).decode("ascii")
        self.controller.save()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.remember_geometry()
        if self.tray_available and not self.quitting:
            event.ignore()
            self.hide()  # keeps streaming in the tray
            return
        event.accept()

"""OBS: let AvatarCam switch OBS to the avatar scene while streaming and keep the mic in sync."""
from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSizePolicy, QSpinBox,
                               QWidget)

from avatarcam.errors import AvatarCamError
from avatarcam.obs import DEFAULT_PORT, ObsConfig, obs_lists, test_connection

from ..controller import AppController
from ..theme import GRID
from ..widgets import Card, Page, inline_message, muted, show_message
from .obs_keyed_card import KeyedCard

log = logging.getLogger(__name__)


def action_row(label: str, slot) -> tuple[QHBoxLayout, QPushButton, QLabel]:
    """A button on the left and the inline note it answers with beside it (Test, Fill from OBS)."""
    row = QHBoxLayout()
    row.setSpacing(GRID)
    button = QPushButton(label)
    button.clicked.connect(slot)
    button.setSizePolicy(QSizePolicy.Maximum, QSizePolicy.Fixed)
    row.addWidget(button, 0, Qt.AlignLeft)
    message = inline_message("note")
    row.addWidget(message, 1)
    return row, button, message

class ObsPage(Page):
    key = "obs"
    title = "OBS Studio"
    subtitle = "AvatarCam can switch OBS to your avatar scene while it streams, and keep voice and lips in sync."

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._loading = True

        conn = Card("Connection", "In OBS: Tools → WebSocket Server Settings → Enable, and copy the password.")
        self.enabled = QCheckBox("Control OBS while streaming")
        self.enabled.toggled.connect(self._save)
        conn.add(self.enabled)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldsStayAtSizeHint)
        form.setSpacing(GRID)
        form.setHorizontalSpacing(2 * GRID)
        self.host = QLineEdit()
        self.host.setMinimumWidth(280)
        self.host.editingFinished.connect(self._save)
        form.addRow("Host", self.host)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setMinimumWidth(120)
        self.port.setToolTip(f"obs-websocket 5 listens on {DEFAULT_PORT} by default")
        self.port.valueChanged.connect(self._save)
        form.addRow("Port", self.port)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.Password)
        self.password.setMinimumWidth(280)
        self.password.editingFinished.connect(self._save)
        form.addRow("Password", self.password)
        conn.add(form)
        conn.add(muted("The password is stored in your settings file, which only your user account can read."))
        trow, self.test_btn, self.test_msg = action_row("Test connection", self.test)
        conn.add(trow)
        self.body.addWidget(conn)

        scene = Card("Scene and sources", "Fill the lists from OBS, or type the names.")
        sform = QFormLayout()
        sform.setFieldGrowthPolicy(QFormLayout.FieldsStayAtSizeHint)
        sform.setSpacing(GRID)
        sform.setHorizontalSpacing(2 * GRID)
        self.scene = self._combo()
        sform.addRow("Switch to scene", self.scene)
        self.source = self._combo()
        sform.addRow("Show source", self.source)
        self.mic_input = self._combo()
        sform.addRow("Microphone input", self.mic_input)
        scene.add(sform)
        frow, self.fill_btn, self.fill_msg = action_row("Fill from OBS", self.fill_from_obs)
        scene.add(frow)
        self.body.addWidget(scene)

        sync = Card("Voice and lips")
        self.auto_sync = QCheckBox("Set the microphone's sync offset automatically (to the measured delay)")
        self.auto_sync.toggled.connect(self._save)
        sync.add(self.auto_sync)
        orow = QHBoxLayout()
        orow.setSpacing(GRID)
        self.offset = QSpinBox()
        self.offset.setRange(-950, 20000)
        self.offset.setSuffix(" ms")
        self.offset.setMinimumWidth(120)
        self.offset.valueChanged.connect(self._save)
        orow.addWidget(muted("Fixed offset", wrap=False))
        orow.addWidget(self.offset)
        orow.addStretch(1)
        sync.add(orow)
        self.save_msg = inline_message()
        sync.add(self.save_msg)
        self.body.addWidget(sync)
        self.keyed_card = KeyedCard(controller)
        self.body.addWidget(self.keyed_card)
        self.body.addStretch(1)
        self.load()

    def _combo(self) -> QComboBox:
        box = QComboBox()
        box.setEditable(True)
        box.setMinimumWidth(280)
        box.lineEdit().editingFinished.connect(self._save)
        box.activated.connect(self._save)
        return box

    def load(self) -> None:
        self._loading = True
        try:
            o = self.controller.settings.obs
            self.enabled.setChecked(o.enabled)
            self.host.setText(o.host)
            self.port.setValue(o.port)
            self.password.setText(o.password)
            self.scene.setEditText(o.scene)
            self.source.setEditText(o.source)
            self.mic_input.setEditText(o.mic_input)
            self.auto_sync.setChecked(o.sync_offset_auto)
            self.offset.setValue(o.sync_offset_ms)
            self.keyed_card.load()
        finally:
            self._loading = False
        self.offset.setEnabled(not self.auto_sync.isChecked())

    def _save(self) -> None:
        if self._loading:
            return
        self.offset.setEnabled(not self.auto_sync.isChecked())
        o = self.controller.settings.obs
        host = self.host.text().strip()
        if not host:
            show_message(self.save_msg, "Host is empty: use localhost when OBS runs on this computer.")
            return
        o.enabled = self.enabled.isChecked()
        o.host = host
        o.port = self.port.value()
        o.password = self.password.text()
        o.scene = self.scene.currentText().strip()
        o.source = self.source.currentText().strip()
        o.mic_input = self.mic_input.currentText().strip()
        o.sync_offset_auto = self.auto_sync.isChecked()
        o.sync_offset_ms = self.offset.value()
        if self.controller.save():
            show_message(self.save_msg, "")

    def config(self) -> ObsConfig:
        return ObsConfig(host=self.host.text().strip() or "localhost", port=self.port.value(),
                         password=self.password.text(), timeout_s=3.0)

    # -- talking to OBS (worker threads) --------------------------------------------------------
    def test(self) -> None:
        try:
            cfg = self.config()
        except AvatarCamError as exc:
            show_message(self.test_msg, str(exc), "error")
            return
        self.test_btn.setEnabled(False)
        show_message(self.test_msg, f"Connecting to {cfg.host}:{cfg.port}…", "note")

        def done(result) -> None:
            ok, text = result
            self.test_btn.setEnabled(True)
            show_message(self.test_msg, text, "ok" if ok else "error")

        def failed(exc) -> None:
            self.test_btn.setEnabled(True)
            show_message(self.test_msg, str(exc), "error")

        self.controller.runner.run(lambda: test_connection(cfg), on_done=done, on_error=failed, name="ui-obs-test")

    def fill_from_obs(self) -> None:
        try:
            cfg = self.config()
        except AvatarCamError as exc:
            show_message(self.fill_msg, str(exc), "error")
            return
        self.fill_btn.setEnabled(False)
        show_message(self.fill_msg, "Asking OBS…", "note")

        def done(lists: dict) -> None:
            self.fill_btn.setEnabled(True)
            for box, items in ((self.scene, lists["scenes"]), (self.source, lists["inputs"]),
                               (self.mic_input, lists["audio"]), (self.keyed_card.scene, lists["scenes"])):
                keep = box.currentText()
                box.blockSignals(True)
                box.clear()
                box.addItems(items)
                box.setEditText(keep)
                box.blockSignals(False)
            show_message(self.fill_msg, f"{len(lists['scenes'])} scenes, {len(lists['inputs'])} sources.", "ok")

        def failed(exc) -> None:
            self.fill_btn.setEnabled(True)
            show_message(self.fill_msg, str(exc), "error")

        self.controller.runner.run(lambda: obs_lists(cfg), on_done=done, on_error=failed, name="ui-obs-lists")

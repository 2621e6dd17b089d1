"""Devices: which microphone drives the avatar, where the video goes (camera, file), at what size."""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSpinBox, QWidget)

from avatarcam.audio import list_output_devices

from ..controller import AppController
from ..theme import GRID
from ..widgets import Card, Page, inline_message, muted, show_message
from .mic_card import MicCard

log = logging.getLogger(__name__)

RESOLUTIONS = ((640, 360), (854, 480), (1280, 720), (1920, 1080))
BACKENDS = (("Automatic", None), ("v4l2loopback (Linux)", "v4l2loopback"), ("OBS Virtual Camera", "obs"),
            ("Unity Capture (Windows)", "unitycapture"))


class DevicesPage(Page):
    key = "devices"
    title = "Devices"
    subtitle = "The microphone that drives the lips, and where the video goes."

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._loading = True
        s = controller.settings

        self.mic_card = MicCard(controller)
        self.mic_card.refresh_btn.clicked.connect(self.refresh_devices)
        self.body.addWidget(self.mic_card)

        # -- camera ---------------------------------------------------------------------------
        cam = Card("Virtual camera", "Video apps (Zoom, Meet, OBS) see the avatar as a webcam.")
        self.cam_enabled = QCheckBox("Send the avatar to the virtual camera")
        self.cam_enabled.setChecked(s.camera.enabled)
        self.cam_enabled.toggled.connect(self._save_camera)
        cam.add(self.cam_enabled)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldsStayAtSizeHint)
        form.setSpacing(GRID)
        form.setHorizontalSpacing(2 * GRID)
        self.backend = QComboBox()
        self.backend.setMinimumWidth(280)
        for label, value in BACKENDS:
            self.backend.addItem(label, value)
        self.backend.currentIndexChanged.connect(self._save_camera)
        form.addRow("Backend", self.backend)
        self.device = QLineEdit()
        self.device.setMinimumWidth(280)
        self.device.setPlaceholderText("first free device (e.g. /dev/video10)")
        self.device.editingFinished.connect(self._save_camera)
        form.addRow("Device", self.device)
        res = QHBoxLayout()
        res.setSpacing(GRID)
        self.resolution = QComboBox()
        for w, h in RESOLUTIONS:
            self.resolution.addItem(f"{w} × {h}", f"{w}x{h}")
        self.resolution.addItem("Custom", None)
        self.resolution.currentIndexChanged.connect(self._resolution_picked)
        res.addWidget(self.resolution)
        self.width_spin = QSpinBox()
        self.height_spin = QSpinBox()
        for spin in (self.width_spin, self.height_spin):
            spin.setRange(64, 4096)
            spin.setSingleStep(16)
            spin.setMinimumWidth(96)
            spin.editingFinished.connect(self._save_camera)
        res.addWidget(self.width_spin)
        res.addWidget(QLabel("×"))
        res.addWidget(self.height_spin)
        res.addStretch(1)
        form.addRow("Resolution", res)
        self.fps = QSpinBox()
        self.fps.setRange(1, 120)
        self.fps.setSuffix(" fps")
        self.fps.setMinimumWidth(96)
        self.fps.valueChanged.connect(self._save_camera)
        form.addRow("Frame rate", self.fps)
        self.mirror = QCheckBox("Mirror horizontally")
        self.mirror.toggled.connect(self._save_camera)
        form.addRow("", self.mirror)
        cam.add(form)
        cam.add(muted("The model draws at its own size and rate; the camera letterboxes and repeats frames to "
                      "match these settings."))
        self.cam_msg = inline_message()
        cam.add(self.cam_msg)
        self.body.addWidget(cam)

        # -- recording and delayed mic --------------------------------------------------------
        rec = Card("Recording and audio out")
        self.record = QCheckBox("Record the stream to a video file (with its audio)")
        self.record.toggled.connect(self._save_record)
        rec.add(self.record)
        rrow = QHBoxLayout()
        rrow.setSpacing(GRID)
        self.record_path = QLineEdit()
        self.record_path.setPlaceholderText("avatar.mp4")
        self.record_path.editingFinished.connect(self._save_record)
        rrow.addWidget(self.record_path, 1)
        self.record_browse = QPushButton("Choose…")
        self.record_browse.clicked.connect(self._browse_record)
        rrow.addWidget(self.record_browse)
        rec.add(rrow)
        self.record_msg = inline_message()
        rec.add(self.record_msg)
        drow = QFormLayout()
        drow.setFieldGrowthPolicy(QFormLayout.FieldsStayAtSizeHint)
        drow.setSpacing(GRID)
        self.delayed = QComboBox()
        self.delayed.setMinimumWidth(280)
        self.delayed.currentIndexChanged.connect(self._save_delayed)
        drow.addRow("Delayed voice out", self.delayed)
        rec.add(drow)
        rec.add(muted("Plays your voice delayed by the stream's delay into a virtual cable, so apps without "
                      "sync settings get matching lips and voice."))
        self.body.addWidget(rec)
        self.body.addStretch(1)
        self.load()

    # -- loading --------------------------------------------------------------------------------
    def load(self) -> None:
        self._loading = True
        try:
            s = self.controller.settings
            self.mic_card.load()
            self._fill_outputs()
            self.cam_enabled.setChecked(s.camera.enabled)
            i = self.backend.findData(s.camera.backend)
            if i < 0:
                self.backend.addItem(str(s.camera.backend), s.camera.backend)
                i = self.backend.count() - 1
            self.backend.setCurrentIndex(i)
            self.device.setText(s.camera.device or "")
            i = self.resolution.findData(f"{s.camera.width}x{s.camera.height}")
            self.resolution.setCurrentIndex(i if i >= 0 else self.resolution.count() - 1)
            self.width_spin.setValue(s.camera.width)
            self.height_spin.setValue(s.camera.height)
            self.fps.setValue(s.camera.fps)
            self.mirror.setChecked(s.camera.mirror)
            self.record.setChecked(bool(s.output.record))
            self.record_path.setText(s.output.record or "")
        finally:
            self._loading = False
        self._update_enabled()

    def _fill_outputs(self) -> None:
        s = self.controller.settings
        self.delayed.blockSignals(True)
        self.delayed.clear()
        self.delayed.addItem("Off", None)
        for d in list_output_devices():
            self.delayed.addItem(d.name, d.name)
        if s.audio.delayed_output and self.delayed.findData(s.audio.delayed_output) < 0:
            self.delayed.addItem(f"{s.audio.delayed_output} (not connected)", s.audio.delayed_output)
        self.delayed.setCurrentIndex(max(0, self.delayed.findData(s.audio.delayed_output)))
        self.delayed.blockSignals(False)

    def refresh_devices(self) -> None:
        """Re-scan PortAudio (devices plugged in after start-up)."""
        listening = self.mic_card.pause_for_rescan()
        self._loading = True
        try:
            self.mic_card.fill_mics()
            self._fill_outputs()
        finally:
            self._loading = False
        if listening:
            self.mic_card.listen_btn.setChecked(True)

    def _update_enabled(self) -> None:
        custom = self.resolution.currentData() is None
        self.width_spin.setEnabled(custom)
        self.height_spin.setEnabled(custom)
        for w in (self.backend, self.device, self.resolution, self.fps, self.mirror):
            w.setEnabled(self.cam_enabled.isChecked())
        if not self.cam_enabled.isChecked():
            self.width_spin.setEnabled(False)
            self.height_spin.setEnabled(False)
        self.record_path.setEnabled(self.record.isChecked())
        self.record_browse.setEnabled(self.record.isChecked())

    def hideEvent(self, event) -> None:
        self.mic_card.listen_btn.setChecked(False)  # never keep a microphone open that nobody looks at
        super().hideEvent(event)

    # -- camera / recording ---------------------------------------------------------------------
    def _resolution_picked(self) -> None:
        size = self.resolution.currentData()
        if size is not None and not self._loading:
            w, h = (int(v) for v in size.split("x"))
            self._loading = True
            self.width_spin.setValue(w)
            self.height_spin.setValue(h)
            self._loading = False
        self._save_camera()

    def _save_camera(self) -> None:
        if self._loading:
            return
        self._update_enabled()
        c = self.controller.settings.camera
        c.enabled = self.cam_enabled.isChecked()
        c.backend = self.backend.currentData()
        c.device = self.device.text().strip() or None
        c.width, c.height = self.width_spin.value(), self.height_spin.value()
        c.fps = self.fps.value()
        c.mirror = self.mirror.isChecked()
        self.controller.save()

    def _save_record(self) -> None:
        if self._loading:
            return
        self._update_enabled()
        out = self.controller.settings.output
        text = self.record_path.text().strip()
        if not self.record.isChecked():
            out.record = None
            show_message(self.record_msg, "")
        elif not text:
            out.record = None
            show_message(self.record_msg, "Choose where to save the recording.", "note")
        else:
            path = Path(text).expanduser()
            if not path.parent.is_dir():
                show_message(self.record_msg, f"The folder {path.parent} does not exist.")
                return
            if path.suffix.lower() not in (".mp4", ".mkv", ".mov"):
                show_message(self.record_msg, "Use a .mp4, .mkv or .mov file name.")
                return
            out.record = str(path)
            show_message(self.record_msg, "")
        self.controller.save()

    def _browse_record(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Record the stream to", str(Path.home() / "avatar.mp4"),
                                              "MP4 video (*.mp4)")
        if path:
            self.record_path.setText(path)
            self._save_record()

    def _save_delayed(self) -> None:
        if self._loading:
            return
        self.controller.settings.audio.delayed_output = self.delayed.currentData()
        self.controller.save()

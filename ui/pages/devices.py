"""Devices: which microphone drives the avatar, where the video goes (camera, file), at what size."""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSpinBox, QWidget)

from avatarcam.audio import list_input_devices, list_output_devices, refresh_devices

from ..controller import AppController
from ..theme import GRID
from ..widgets import Card, LevelBar, Page, inline_message, muted, show_message
from ..workers import LevelMeter

log = logging.getLogger(__name__)

RESOLUTIONS = ((640, 360), (854, 480), (1280, 720), (1920, 1080))
BACKENDS = (("Automatic", None), ("v4l2loopback (Linux)", "v4l2loopback"), ("OBS Virtual Camera", "obs"),
            ("Unity Capture (Windows)", "unitycapture"))
AUDIO_FILTER = "Audio (*.wav *.mp3 *.flac *.ogg *.m4a *.aac *.opus);;All files (*)"


class DevicesPage(Page):
    key = "devices"
    title = "Devices"
    subtitle = "The microphone that drives the lips, and where the video goes."

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._loading = True
        s = controller.settings

        # -- microphone -----------------------------------------------------------------------
        mic = Card("Microphone")
        row = QHBoxLayout()
        row.setSpacing(GRID)
        self.mic = QComboBox()
        self.mic.setMinimumWidth(280)
        self.mic.currentIndexChanged.connect(self._mic_changed)
        row.addWidget(self.mic, 1)
        self.refresh_btn = QPushButton("Refresh")
        self.refresh_btn.clicked.connect(self.refresh_devices)
        row.addWidget(self.refresh_btn)
        mic.add(row)
        lrow = QHBoxLayout()
        lrow.setSpacing(2 * GRID)
        self.listen_btn = QPushButton("Test microphone")
        self.listen_btn.setCheckable(True)
        self.listen_btn.toggled.connect(self._listen_toggled)
        lrow.addWidget(self.listen_btn)
        self.level = LevelBar()
        lrow.addWidget(self.level, 1)
        self.level_text = QLabel("–")
        self.level_text.setObjectName("statLabel")
        self.level_text.setMinimumWidth(72)
        self.level_text.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        lrow.addWidget(self.level_text)
        mic.add(lrow)
        self.mic_msg = inline_message()
        mic.add(self.mic_msg)
        self.use_file = QCheckBox("Use an audio file instead of the microphone (plays like a live voice)")
        self.use_file.toggled.connect(self._file_changed)
        mic.add(self.use_file)
        frow = QHBoxLayout()
        frow.setSpacing(GRID)
        self.audio_path = QLineEdit()
        self.audio_path.setPlaceholderText("A speech recording: wav, mp3, flac, m4a…")
        self.audio_path.editingFinished.connect(self._file_changed)
        frow.addWidget(self.audio_path, 1)
        self.audio_browse = QPushButton("Browse…")
        self.audio_browse.clicked.connect(self._browse_audio)
        frow.addWidget(self.audio_browse)
        mic.add(frow)
        self.file_msg = inline_message()
        mic.add(self.file_msg)
        self.body.addWidget(mic)

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

        self.meter = LevelMeter(self)
        self.meter.level.connect(self._show_level)
        self.meter.failed.connect(self._meter_failed)
        self.meter.opened.connect(lambda name: show_message(self.mic_msg, f"Listening to {name}.", "note"))
        self.load()

    # -- loading --------------------------------------------------------------------------------
    def load(self) -> None:
        self._loading = True
        try:
            s = self.controller.settings
            self._fill_devices()
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
            self.use_file.setChecked(self.controller.audio_file is not None)
            self.audio_path.setText(str(self.controller.audio_file or ""))
        finally:
            self._loading = False
        self._update_enabled()

    def _fill_devices(self) -> None:
        s = self.controller.settings
        self.mic.blockSignals(True)
        self.mic.clear()
        self.mic.addItem("System default", None)
        inputs = list_input_devices()
        for d in inputs:
            self.mic.addItem(f"{d.name}" + ("  (default)" if d.is_default else ""), d.name)
        if s.audio.mic is not None and self.mic.findData(s.audio.mic) < 0:
            self.mic.addItem(f"{s.audio.mic} (not connected)", s.audio.mic)
        self.mic.setCurrentIndex(max(0, self.mic.findData(s.audio.mic)))
        self.mic.blockSignals(False)
        if not inputs:
            show_message(self.mic_msg, "No microphones found: PortAudio or the sound server is not available "
                                       "(Linux: install libportaudio2 and check that PulseAudio or PipeWire runs).")
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
        listening = self.listen_btn.isChecked()
        self.listen_btn.setChecked(False)
        self.meter.wait(3)
        if not self.controller.live:
            refresh_devices()  # closes every open stream, so never while streaming
        self._loading = True
        try:
            self._fill_devices()
        finally:
            self._loading = False
        if listening:
            self.listen_btn.setChecked(True)

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
        use_file = self.use_file.isChecked()
        self.audio_path.setEnabled(use_file)
        self.audio_browse.setEnabled(use_file)
        self.mic.setEnabled(not use_file)
        self.listen_btn.setEnabled(not use_file)

    # -- microphone -----------------------------------------------------------------------------
    def _mic_changed(self) -> None:
        if self._loading:
            return
        self.controller.settings.audio.mic = self.mic.currentData()
        self.controller.save()
        if self.listen_btn.isChecked():
            self.meter.start(self.mic.currentData())

    def _listen_toggled(self, on: bool) -> None:
        if on:
            show_message(self.mic_msg, "")
            self.meter.start(self.mic.currentData())
            self.listen_btn.setText("Stop test")
        else:
            self.meter.stop()
            self.listen_btn.setText("Test microphone")
            self.level.set_level(-90)
            self.level_text.setText("–")

    def _show_level(self, db: float) -> None:
        if self.listen_btn.isChecked():
            self.level.set_level(db)
            self.level_text.setText(f"{db:.0f} dBFS" if db > -90 else "silent")

    def _meter_failed(self, text: str) -> None:
        self.listen_btn.setChecked(False)
        show_message(self.mic_msg, text)

    def hideEvent(self, event) -> None:
        self.listen_btn.setChecked(False)  # never keep a microphone open that nobody looks at
        super().hideEvent(event)

    def _file_changed(self) -> None:
        if self._loading:
            return
        self._update_enabled()
        text = self.audio_path.text().strip()
        if not self.use_file.isChecked():
            self.controller.audio_file = None
            show_message(self.file_msg, "")
        elif not text:
            self.controller.audio_file = None
            show_message(self.file_msg, "Choose an audio file, or untick the box to use the microphone.", "note")
        elif not Path(text).expanduser().is_file():
            self.controller.audio_file = None
            show_message(self.file_msg, f"No file at {text}.")
        else:
            self.controller.audio_file = Path(text).expanduser()
            show_message(self.file_msg, "")
            self.listen_btn.setChecked(False)
        self.controller.settings_changed.emit()

    def _browse_audio(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Speak with an audio file", str(Path.home()), AUDIO_FILTER)
        if path:
            self.audio_path.setText(path)
            self._file_changed()

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

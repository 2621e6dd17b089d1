"""The Devices page's microphone card: the input, a test with the level meter, the noise gate on that
meter, and an audio file instead of the microphone.

Why its own widget: everything about what the avatar hears lives together (the meter, the gate set
on it, the file that replaces the mic), apart from where the video goes.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton

from avatarcam.audio import list_input_devices, refresh_devices

from ..controller import AppController
from ..gate_meter import GateLevelBar
from ..theme import GRID
from ..widgets import Card, inline_message, muted, show_message
from ..workers import LevelMeter

AUDIO_FILTER = "Audio (*.wav *.mp3 *.flac *.ogg *.m4a *.aac *.opus);;All files (*)"
GATE_START_DB = -45.0   # where a newly enabled gate starts: above a quiet room, below a voice


class MicCard(Card):
    """Microphone, level meter with the gate's threshold, and the file option."""

    def __init__(self, controller: AppController):
        super().__init__("Microphone")
        self.controller = controller
        self._loading = True
        row = QHBoxLayout()
        row.setSpacing(GRID)
        self.mic = QComboBox()
        self.mic.setMinimumWidth(280)
        self.mic.currentIndexChanged.connect(self._mic_changed)
        row.addWidget(self.mic, 1)
        self.refresh_btn = QPushButton("Refresh")
        row.addWidget(self.refresh_btn)
        self.add(row)
        lrow = QHBoxLayout()
        lrow.setSpacing(2 * GRID)
        self.listen_btn = QPushButton("Test microphone")
        self.listen_btn.setCheckable(True)
        self.listen_btn.toggled.connect(self._listen_toggled)
        lrow.addWidget(self.listen_btn)
        self.level = GateLevelBar()
        self.level.threshold_moved.connect(self._show_gate)
        self.level.threshold_set.connect(self._gate_set)
        lrow.addWidget(self.level, 1)
        self.level_text = QLabel("–")
        self.level_text.setObjectName("statLabel")
        self.level_text.setMinimumWidth(72)
        self.level_text.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        lrow.addWidget(self.level_text)
        self.add(lrow)
        grow = QHBoxLayout()
        grow.setSpacing(GRID)
        self.gate = QCheckBox("Noise gate: the avatar hears silence below the marker (drag it on the meter)")
        self.gate.toggled.connect(self._gate_toggled)
        grow.addWidget(self.gate, 1)
        self.gate_text = QLabel("")
        self.gate_text.setObjectName("statLabel")
        grow.addWidget(self.gate_text)
        self.add(grow)
        self.mic_msg = inline_message()
        self.add(self.mic_msg)
        self.use_file = QCheckBox("Use an audio file instead of the microphone (plays like a live voice)")
        self.use_file.toggled.connect(self._file_changed)
        self.add(self.use_file)
        frow = QHBoxLayout()
        frow.setSpacing(GRID)
        self.audio_path = QLineEdit()
        self.audio_path.setPlaceholderText("A speech recording: wav, mp3, flac, m4a…")
        self.audio_path.editingFinished.connect(self._file_changed)
        frow.addWidget(self.audio_path, 1)
        self.audio_browse = QPushButton("Browse…")
        self.audio_browse.clicked.connect(self._browse_audio)
        frow.addWidget(self.audio_browse)
        self.add(frow)
        self.file_msg = inline_message()
        self.add(self.file_msg)
        self.add(muted("Typing and fans are quiet but not silent: with the gate on, only sound above the marker "
                       "moves the mouth. Your voice out (delayed or in OBS) is not gated."))
        self.meter = LevelMeter(self)
        self.meter.level.connect(self._show_level)
        self.meter.failed.connect(self._meter_failed)
        self.meter.opened.connect(lambda name: show_message(self.mic_msg, f"Listening to {name}.", "note"))

    def load(self) -> None:
        self._loading = True
        try:
            gate = self.controller.settings.audio.noise_gate_db
            self.gate.setChecked(gate is not None)
            self.level.set_threshold(gate)
            self._show_gate(gate)
            self.fill_mics()
            self.use_file.setChecked(self.controller.audio_file is not None)
            self.audio_path.setText(str(self.controller.audio_file or ""))
        finally:
            self._loading = False
        self.update_enabled()

    def fill_mics(self) -> None:
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

    def pause_for_rescan(self) -> bool:
        """Stop the test before PortAudio re-scans (it closes every stream); True if it was running."""
        listening = self.listen_btn.isChecked()
        self.listen_btn.setChecked(False)
        self.meter.wait(3)
        if not self.controller.live:
            refresh_devices()  # closes every open stream, so never while streaming
        return listening

    def update_enabled(self) -> None:
        use_file = self.use_file.isChecked()
        self.audio_path.setEnabled(use_file)
        self.audio_browse.setEnabled(use_file)
        self.mic.setEnabled(not use_file)
        self.listen_btn.setEnabled(not use_file)

    # -- microphone test ------------------------------------------------------------------------
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

    # -- noise gate ------------------------------------------------------------------------------
    def _gate_toggled(self, on: bool) -> None:
        if self._loading:
            return
        db = (self.level.threshold_db if self.level.threshold_db is not None else GATE_START_DB) if on else None
        self.level.set_threshold(db)
        self._gate_set(db)

    def _show_gate(self, db: float | None) -> None:
        self.gate_text.setText("" if db is None else f"gate {db:.0f} dBFS")

    def _gate_set(self, db: float | None) -> None:
        """Save the threshold and move it in a running stream at once."""
        self._show_gate(db)
        self.controller.set_noise_gate(db)

    # -- audio file -------------------------------------------------------------------------------
    def _file_changed(self) -> None:
        if self._loading:
            return
        self.update_enabled()
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

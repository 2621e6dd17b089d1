"""Live: the avatar as the camera sees it, and the numbers that say whether the stream keeps up."""
from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QWidget

from avatarcam.session import SessionStats

from ..controller import AppController
from ..theme import GRID
from ..widgets import Card, Page, PreviewView, StatTile, muted


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms"


class LivePage(Page):
    key = "live"
    title = "Live"
    subtitle = "Your avatar as the camera sees it, with the stream's timing."

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        row = QHBoxLayout()
        row.setSpacing(2 * GRID)
        stage = Card()
        self.preview = PreviewView()
        stage.add(self.preview)
        self.source_note = muted("")
        stage.add(self.source_note)
        row.addWidget(stage, 3)

        side = QWidget()
        grid = QGridLayout(side)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2 * GRID)
        self.tiles = {key: StatTile(label) for key, label in (
            ("fps", "Output frame rate"), ("latency", "Audio → lips delay"), ("step", "Step time (p50)"),
            ("drops", "Dropped / repeated"), ("realtime", "Real-time factor"), ("obs", "OBS"))}
        for i, tile in enumerate(self.tiles.values()):
            grid.addWidget(tile, i // 2, i % 2)
        grid.setRowStretch(3, 1)
        row.addWidget(side, 2)
        self.body.addLayout(row, 1)
        self.stats = SessionStats()
        controller.bridge.frame_ready.connect(self._draw_frame)
        controller.stats_changed.connect(self.show_stats)
        controller.state_changed.connect(self._on_state)
        controller.avatars_changed.connect(self.show_idle)
        controller.settings_changed.connect(self._update_source)
        self.show_stats(SessionStats())
        self.show_idle()
        self._update_source()

    def _update_source(self) -> None:
        c = self.controller
        audio = f"audio file {c.audio_file.name}" if c.audio_file else "microphone"
        avatar = c.current_avatar()
        self.source_note.setText(f"Avatar: {avatar.name if avatar else 'default'}  ·  model: {c.model_name()}  ·  "
                                 f"voice: {audio}")

    def show_idle(self) -> None:
        """While not streaming: the current avatar, dimmed, with a hint."""
        self._update_source()
        if self.controller.live:
            return
        avatar = self.controller.current_avatar()
        image = None
        if avatar is not None:
            try:
                image = avatar.load_image()
            except Exception:  # a broken file: the placeholder text is enough
                image = None
        self.preview.placeholder = {
            "starting": "Loading the model…",
            "stopping": "Stopping…",
            "error": "The stream stopped: see the message above.",
        }.get(self.controller.state, "Press Start to see your avatar as the camera sees it.")
        self.preview.set_frame(image, dimmed=True)

    def _on_state(self, state: str) -> None:
        if state != "live":
            self.show_idle()

    def _draw_frame(self) -> None:
        frame = self.controller.bridge.take_frame()
        if frame is not None:
            self.preview.set_frame(frame)

    def show_stats(self, st: SessionStats) -> None:
        self.stats = st
        t = self.tiles
        target = f"target {st.fps:.0f} fps" if st.fps else ""
        t["fps"].set(f"{st.output_fps:.1f}" if st.output_fps else "–", target)
        t["latency"].set(_ms(st.latency_s), f"expected {_ms(st.expected_latency_s)}" if st.expected_latency_s else "")
        t["step"].set(f"{st.step_ms_p50:.0f} ms" if st.step_ms_p50 else "–",
                      f"p95 {st.step_ms_p95:.0f} ms" if st.step_ms_p95 else "")
        shown = f"{st.frames_shown} frames shown" if st.frames_shown else ""
        if st.dropped_audio_s:   # the engine fell behind the voice: say how much it never heard
            shown = f"{st.dropped_audio_s:.1f} s of audio dropped" + (f" · {shown}" if shown else "")
        t["drops"].set(f"{st.dropped_frames} / {st.repeated_frames}", shown)
        t["realtime"].set(f"{st.realtime_factor:.2f}×" if st.realtime_factor else "–",
                          st.behind or ("≥ 1.0 keeps up with the voice" if st.realtime_factor else ""))
        t["obs"].set(st.obs_status.split(":")[0].capitalize() if st.obs_status else "Off",
                     st.obs_status.partition(":")[2].strip()[:40])

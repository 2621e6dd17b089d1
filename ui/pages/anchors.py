"""Anchors: what keeps the face steady over a long stream, and the speed/quality trade-off (B, L, N).

Nothing applies until Apply, because every choice changes the delay viewers feel; each option shows
its estimated delay and compute first (see ui.estimates for the arithmetic).
"""
from __future__ import annotations

import logging

from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QPushButton,
                               QRadioButton, QSpinBox, QWidget)

from avatarcam import presets
from avatarcam.errors import ModelError
from avatarcam.presets import Choice

from .. import estimates
from ..controller import AppController
from ..theme import GRID
from ..widgets import Card, Page, inline_message, muted, show_message

log = logging.getLogger(__name__)


class AnchorsPage(Page):
    key = "anchors"
    title = "Anchors & timing"
    subtitle = "Anchors keep the face consistent for hours; block size, window and passes trade delay for quality."

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.facts: presets.CardFacts | None = None

        anchors = Card("Anchors")
        self.style_anchor = QCheckBox("Style anchor — keep the avatar picture in view of every step")
        self.rope_reindex = QCheckBox("RoPE re-index — keep the anchor at a fixed distance, however long you stream")
        self.audio_zero = QCheckBox("Silent anchor — the anchor picture hears no audio (zero padding)")
        for box in (self.style_anchor, self.rope_reindex, self.audio_zero):
            anchors.add(box)
            box.toggled.connect(self._changed)
        trow = QHBoxLayout()
        trow.setSpacing(GRID)
        trow.addWidget(QLabel("Temporal anchor length"))
        self.temporal = QSpinBox()
        self.temporal.setRange(0, 64)
        self.temporal.setSuffix(" frames")
        self.temporal.setMinimumWidth(120)
        self.temporal.valueChanged.connect(self._changed)
        trow.addWidget(self.temporal)
        trow.addWidget(muted("recent clean frames the next window looks back at (0 = off)"), 1)
        anchors.add(trow)
        self.body.addWidget(anchors)

        timing = Card("Speed and quality")
        self.model_label = muted("")
        timing.add(self.model_label)
        self.model_error = inline_message()
        timing.add(self.model_error)
        grid = QGridLayout()
        grid.setHorizontalSpacing(3 * GRID)
        grid.setVerticalSpacing(GRID)
        for col, text in enumerate(("Preset", "B · L · N", "Delay", "Compute")):
            h = QLabel(text)
            h.setObjectName("statLabel")
            grid.addWidget(h, 0, col)
        self.group = QButtonGroup(self)
        self.rows: dict[str, tuple[QRadioButton, QLabel, QLabel, QLabel]] = {}
        for r, name in enumerate((*presets.PRESETS, "custom"), start=1):
            radio = QRadioButton(name.capitalize())
            radio.setToolTip(estimates.PRESET_TEXT[name])
            self.group.addButton(radio)
            radio.toggled.connect(self._changed)
            blN, delay, cost = QLabel(), QLabel(), QLabel()
            desc = muted(estimates.PRESET_TEXT[name], wrap=False)
            cell = QWidget()
            cl = QHBoxLayout(cell)
            cl.setContentsMargins(0, 0, 0, 0)
            cl.setSpacing(GRID)
            cl.addWidget(radio)
            cl.addWidget(desc, 1)
            grid.addWidget(cell, r, 0)
            grid.addWidget(blN, r, 1)
            grid.addWidget(delay, r, 2)
            grid.addWidget(cost, r, 3)
            self.rows[name] = (radio, blN, delay, cost)
        grid.setColumnStretch(0, 1)
        timing.add(grid)

        adv = QFormLayout()
        adv.setSpacing(GRID)
        self.block = QSpinBox()
        self.block.setRange(0, 64)
        self.window = QSpinBox()
        self.window.setRange(0, 16)
        self.passes = QSpinBox()
        self.passes.setRange(0, 16)
        for spin, label, hint in ((self.block, "Block size B", "latent frames emitted per step"),
                                  (self.window, "Window L", "blocks denoised together"),
                                  (self.passes, "Passes N", "model calls per step")):
            spin.setMinimumWidth(96)
            spin.valueChanged.connect(self._custom_edited)
            row = QHBoxLayout()
            row.setSpacing(GRID)
            row.addWidget(spin)
            row.addWidget(muted(hint, wrap=False), 1)
            adv.addRow(label, row)
        self.advanced = QWidget()
        self.advanced.setLayout(adv)
        timing.add(self.advanced)
        self.custom_estimate = muted("")
        timing.add(self.custom_estimate)
        self.problems = inline_message()
        timing.add(self.problems)
        self.body.addWidget(timing)

        arow = QHBoxLayout()
        arow.setSpacing(2 * GRID)
        self.status = muted("", wrap=True)
        arow.addWidget(self.status, 1)
        self.revert_btn = QPushButton("Revert")
        self.revert_btn.clicked.connect(self.load)
        self.apply_btn = QPushButton("Apply")
        self.apply_btn.setObjectName("primary")
        self.apply_btn.clicked.connect(self.apply)
        arow.addWidget(self.revert_btn)
        arow.addWidget(self.apply_btn)
        self.body.addLayout(arow)
        self.body.addStretch(1)
        self._loading = False
        controller.avatars_changed.connect(self.load)
        self.load()

    # -- state ----------------------------------------------------------------------------------
    def load(self) -> None:
        """Show the saved settings (and the current model's facts)."""
        self._loading = True
        try:
            a = self.controller.settings.anchors
            self.style_anchor.setChecked(a.style_anchor)
            self.rope_reindex.setChecked(a.rope_reindex)
            self.audio_zero.setChecked(a.anchor_audio_zero)
            self.temporal.setValue(a.temporal_frames)
            model = self.controller.model_name()
            try:
                self.facts = presets.card_facts(model)
                show_message(self.model_error, "")
            except ModelError as exc:
                self.facts = None
                show_message(self.model_error, f"{exc}. Delay estimates need the model; the anchor switches above "
                                               "still apply.")
            f = self.facts
            if f is not None:
                self.model_label.setText(f"Model “{f.name}”: {f.fps:g} fps, {f.width}×{f.height}, one block of "
                                         f"B={f.block_frames} lasts {presets.block_seconds(f, f.block_frames) * 1000:.0f} ms.")
                custom = presets.custom_choice(self.controller.settings.anchors, f)
                self.block.setValue(custom.block_frames)
                self.window.setValue(custom.window)
                self.passes.setValue(custom.passes)
            else:
                self.model_label.setText(f"Model “{model}”")
            preset = a.preset if a.preset in self.rows else "balanced"
            self.rows[preset][0].setChecked(True)
        finally:
            self._loading = False
        self._refresh()
        self.status.setText("")

    def preset(self) -> str:
        for name, (radio, *_rest) in self.rows.items():
            if radio.isChecked():
                return name
        return "balanced"

    def custom_choice(self) -> Choice:
        return Choice(self.block.value(), self.window.value(), self.passes.value())

    def choice(self) -> Choice | None:
        if self.facts is None:
            return None
        p = self.preset()
        return self.custom_choice() if p == "custom" else presets.preset_choice(self.facts, p)

    def _custom_edited(self) -> None:
        if not self._loading and not self.rows["custom"][0].isChecked():
            self.rows["custom"][0].setChecked(True)
        self._changed()

    def _changed(self) -> None:
        if self._loading:
            return
        self._refresh()
        self.status.setText("Not applied yet.")

    def _refresh(self) -> None:
        f = self.facts
        for name, (radio, bln, delay, cost) in self.rows.items():
            radio.setEnabled(f is not None)
            if f is None:
                bln.setText("–")
                delay.setText("–")
                cost.setText("–")
                continue
            ch = self.custom_choice() if name == "custom" else presets.preset_choice(f, name)
            bln.setText(f"{ch.block_frames} · {ch.window} · {ch.passes}")
            if estimates.check_choice(f, ch, self.temporal.value()):
                delay.setText("invalid")
                cost.setText("–")
            else:
                delay.setText(f"≈ {presets.latency_s(f, ch) * 1000:.0f} ms")
                cost.setText(f"{estimates.relative_cost(f, ch):.2f}×")
        self.advanced.setEnabled(f is not None)
        problems = estimates.check_choice(f, self.custom_choice(), self.temporal.value()) if f is not None else []
        if f is not None and self.preset() != "custom":
            problems = estimates.check_choice(f, self.choice(), self.temporal.value())
        show_message(self.problems, "\n".join(problems))
        ch = self.choice()
        if f is not None and ch is not None and not problems:
            self.custom_estimate.setText(
                f"Estimated delay {presets.latency_s(f, ch) * 1000:.0f} ms = block "
                f"{presets.block_seconds(f, ch.block_frames) * 1000:.0f} ms × {ch.window} + feature look-ahead "
                f"{f.lookahead_s * 1000:.0f} ms.  Compute {estimates.cost_per_frame(ch):.0f} frames per frame "
                f"(N × (L·B + B) / B).")
        else:
            self.custom_estimate.setText("")
        self.apply_btn.setEnabled(not problems)

    def apply(self) -> bool:
        """Validate and save; returns False (with the reasons shown) when a value is out of range."""
        f = self.facts
        temporal = self.temporal.value()
        if f is not None:
            problems = estimates.check_choice(f, self.choice(), temporal)
            if problems:
                show_message(self.problems, "\n".join(problems))
                return False
        s = self.controller.settings
        s.anchors.style_anchor = self.style_anchor.isChecked()
        s.anchors.rope_reindex = self.rope_reindex.isChecked()
        s.anchors.anchor_audio_zero = self.audio_zero.isChecked()
        s.anchors.temporal_frames = temporal
        s.anchors.preset = self.preset()
        if f is not None and self.preset() == "custom":
            estimates.store_custom(s, self.custom_choice())
        if not self.controller.save():
            return False
        self.status.setText("Applied. Restart the stream to use these settings." if self.controller.live
                            else "Applied. They take effect when the stream starts.")
        return True

"""Hotkeys: global keys for next/previous avatar, a chosen avatar, mute and push-to-talk.

Why a page: combinations are personal (a game already uses some), so each is recorded here by
pressing it; the settings file keeps them ("<ctrl>+<alt>+m") and the listener restarts at once.
"""
from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QKeySequenceEdit, QPushButton, QWidget

from avatarcam.hotkey_text import from_qt, hotkey_problem, to_qt

from ..controller import AppController
from ..theme import GRID
from ..widgets import Card, Page, inline_message, muted, show_message

LABELS = (("next_avatar", "Next avatar"), ("previous_avatar", "Previous avatar"), ("chosen", "Chosen avatar"),
          ("mute", "Mute / unmute"), ("push_to_talk", "Push to talk (hold)"))


class HotkeysPage(Page):
    key = "hotkeys"
    title = "Hotkeys"
    subtitle = "Keys that work while a game or another app has focus."

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._loading = True
        card = Card("Global hotkeys", "Click a box and press the keys (with Ctrl, Alt or Shift). With push to talk "
                                      "set, a stream starts muted and listens while you hold it.")
        self.enabled = QCheckBox("Listen for these hotkeys")
        self.enabled.toggled.connect(self.save)
        card.add(self.enabled)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldsStayAtSizeHint)
        form.setSpacing(GRID)
        form.setHorizontalSpacing(2 * GRID)
        self.edits: dict[str, QKeySequenceEdit] = {}
        for action, label in LABELS:
            row = QHBoxLayout()
            row.setSpacing(GRID)
            edit = QKeySequenceEdit()
            edit.setMaximumSequenceLength(1)
            edit.setMinimumWidth(200)
            edit.editingFinished.connect(self.save)
            row.addWidget(edit)
            clear = QPushButton("Clear")
            clear.clicked.connect(lambda _=False, e=edit: (e.clear(), self.save()))
            row.addWidget(clear)
            row.addStretch(1)
            self.edits[action] = edit
            form.addRow(label, row)
        self.chosen_avatar = QComboBox()
        self.chosen_avatar.setMinimumWidth(200)
        self.chosen_avatar.activated.connect(self.save)
        form.addRow("The chosen avatar", self.chosen_avatar)
        card.add(form)
        self.msg = inline_message()
        card.add(self.msg)
        card.add(muted("Linux needs an X11 session (Wayland does not let apps read keys typed into other windows); "
                       "macOS needs AvatarCam allowed in Privacy → Accessibility."))
        self.body.addWidget(card)
        self.body.addStretch(1)
        controller.avatars_changed.connect(self._fill_avatars)
        controller.hotkeys.changed.connect(self._show_problems)
        self.load()

    def _fill_avatars(self) -> None:
        keep = self.controller.settings.hotkeys.chosen_avatar
        self.chosen_avatar.blockSignals(True)
        self.chosen_avatar.clear()
        self.chosen_avatar.addItem("(none)", None)
        for a in self.controller.library.list():
            self.chosen_avatar.addItem(a.name, a.name)
        self.chosen_avatar.setCurrentIndex(max(0, self.chosen_avatar.findData(keep)))
        self.chosen_avatar.blockSignals(False)

    def load(self) -> None:
        self._loading = True
        try:
            s = self.controller.settings.hotkeys
            self.enabled.setChecked(s.enabled)
            for action, edit in self.edits.items():
                combo = getattr(s, action)
                edit.setKeySequence(QKeySequence(to_qt(combo)) if combo else QKeySequence())
            self._fill_avatars()
        finally:
            self._loading = False
        self._show_problems()

    def save(self) -> None:
        """Check every combination, save the settings file, restart the listener."""
        if self._loading:
            return
        s = self.controller.settings.hotkeys
        values = {}
        for action, edit in self.edits.items():
            text = edit.keySequence().toString(QKeySequence.PortableText)
            combo = from_qt(text) if text else None
            problem = hotkey_problem(combo) if combo else None
            if problem:
                show_message(self.msg, f"{dict(LABELS)[action]}: {problem}.")
                return
            values[action] = combo
        for action, combo in values.items():
            setattr(s, action, combo)
        s.enabled = self.enabled.isChecked()
        s.chosen_avatar = self.chosen_avatar.currentData()
        if self.controller.save():
            self.controller.hotkeys.restart()

    def _show_problems(self) -> None:
        problems = self.controller.hotkeys.problems
        if problems:
            show_message(self.msg, " ".join(p[0].upper() + p[1:] + "." for p in problems), "warning")
        elif self.controller.settings.hotkeys.enabled and self.controller.hotkeys.listener is not None:
            show_message(self.msg, "Listening.", "ok")
        else:
            show_message(self.msg, "")

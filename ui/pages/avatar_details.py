"""The Avatars page's "Selected avatar" card: its picture and origin, name, prompt and model, delete
(after a confirmation) and "Use this avatar".

Why its own widget: editing one avatar is apart from the gallery that lists them and the creator
that makes them; the page hands it the selection and a way to refresh the gallery.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QWidget

from avatarcam.avatars import Avatar
from avatarcam.errors import AvatarCamError

from ..controller import AppController
from ..theme import GRID
from ..widgets import Card, inline_message, muted, show_message


class DetailsCard(Card):
    """`show_avatar(a)` fills it; edits go to the library through the controller."""

    def __init__(self, controller: AppController, selected: Callable[[], Avatar | None],
                 refresh: Callable[..., None]):
        super().__init__("Selected avatar")
        self.setMinimumWidth(300)
        self.controller, self.selected, self.refresh = controller, selected, refresh
        self.big = QLabel()
        self.big.setFixedSize(160, 160)
        self.big.setAlignment(Qt.AlignCenter)
        self.add(self.big)
        self.kind_label = muted("")
        self.add(self.kind_label)
        form = QFormLayout()
        form.setSpacing(GRID)
        form.setLabelAlignment(Qt.AlignLeft)
        self.name_edit = QLineEdit()
        self.name_edit.returnPressed.connect(self.rename_selected)
        form.addRow("Name", self.name_edit)
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setPlaceholderText("Describe the look and mood (used by models with text input)")
        self.prompt_edit.setFixedHeight(72)
        form.addRow("Prompt", self.prompt_edit)
        self.model_edit = QLineEdit()
        form.addRow("Model", self.model_edit)
        self.add(form)
        self.detail_msg = inline_message()
        self.add(self.detail_msg)
        brow = QHBoxLayout()
        brow.setSpacing(GRID)
        self.save_btn = QPushButton("Save changes")
        self.save_btn.clicked.connect(self.save_details)
        brow.addWidget(self.save_btn)
        brow.addStretch(1)
        self.delete_btn = QPushButton("Delete…")
        self.delete_btn.setObjectName("danger")
        self.delete_btn.clicked.connect(self.ask_delete)
        brow.addWidget(self.delete_btn)
        self.add(brow)

        self.confirm = QWidget()
        crow2 = QHBoxLayout(self.confirm)
        crow2.setContentsMargins(0, 0, 0, 0)
        crow2.setSpacing(GRID)
        self.confirm_text = QLabel()
        self.confirm_text.setWordWrap(True)
        crow2.addWidget(self.confirm_text, 1)
        self.confirm_yes = QPushButton("Delete")
        self.confirm_yes.setObjectName("dangerSolid")
        self.confirm_yes.clicked.connect(self.delete_selected)
        self.confirm_no = QPushButton("Keep")
        self.confirm_no.clicked.connect(self.confirm.hide)
        crow2.addWidget(self.confirm_yes)
        crow2.addWidget(self.confirm_no)
        self.confirm.hide()
        self.add(self.confirm)

        self.use_btn = QPushButton("Use this avatar")
        self.use_btn.setObjectName("primary")
        self.use_btn.clicked.connect(self.use_selected)
        self.add(self.use_btn)
        self.layout_.addStretch(1)

    def placeholder_model(self) -> None:
        self.model_edit.setPlaceholderText(f"Same as settings ({self.controller.settings.engine.model})")

    def show_avatar(self, a: Avatar | None) -> None:
        self.confirm.hide()
        show_message(self.detail_msg, "")
        self.placeholder_model()
        for w in (self.name_edit, self.prompt_edit, self.model_edit, self.save_btn, self.delete_btn, self.use_btn):
            w.setEnabled(a is not None)
        if a is None:
            self.big.clear()
            self.kind_label.setText("Add a picture or create a cartoon to get started.")
            self.name_edit.clear()
            self.prompt_edit.clear()
            self.model_edit.clear()
            return
        pix = QPixmap(str(a.image_path))
        self.big.setPixmap(pix.scaled(160, 160, Qt.KeepAspectRatio, Qt.SmoothTransformation))
        origin = (f"cartoon made in the creator, seed {a.seed}" if a.look is not None else f"cartoon, seed {a.seed}") \
            if a.kind == "cartoon" else \
            f"picture from {Path(a.source).name}" if a.source else "picture"
        current = self.controller.current_avatar()
        in_use = current is not None and current.slug == a.slug
        self.kind_label.setText(origin + ("  ·  in use" if in_use else ""))
        self.use_btn.setText("In use" if in_use else "Use this avatar")
        self.use_btn.setEnabled(not in_use)
        self.name_edit.setText(a.name)
        self.prompt_edit.setPlainText(a.prompt)
        self.model_edit.setText(a.model or "")

    def rename_selected(self) -> bool:
        a = self.selected()
        new = self.name_edit.text().strip()
        if a is None or new == a.name:
            return True
        was_current = self.controller.current_avatar() is not None and self.controller.current_avatar().slug == a.slug
        try:
            renamed = self.controller.library.rename(a.name, new)
        except AvatarCamError as exc:
            show_message(self.detail_msg, str(exc))
            return False
        if was_current:
            self.controller.settings.avatar.current = renamed.name
            self.controller.save()
        self.refresh(select=renamed.name)
        self.controller.avatars_changed.emit()
        return True

    def save_details(self) -> None:
        a = self.selected()
        if a is None:
            return
        prompt, model = self.prompt_edit.toPlainText().strip(), self.model_edit.text().strip() or None
        if not self.rename_selected():  # (renaming reloads the fields, so they were read first)
            return
        a = self.selected()
        try:
            self.controller.library.set_prompt(a.name, prompt)
            self.controller.library.set_model(a.name, model)
        except AvatarCamError as exc:
            show_message(self.detail_msg, str(exc))
            return
        show_message(self.detail_msg, "Saved.", "ok")
        self.controller.avatars_changed.emit()

    def ask_delete(self) -> None:
        a = self.selected()
        if a is None:
            return
        self.confirm_text.setText(f"Delete “{a.name}” and its files? This cannot be undone.")
        self.confirm.show()

    def delete_selected(self) -> None:
        a = self.selected()
        self.confirm.hide()
        if a is None:
            return
        try:
            self.controller.library.remove(a.name)
        except AvatarCamError as exc:
            show_message(self.detail_msg, str(exc))
            return
        if self.controller.settings.avatar.current and \
                self.controller.settings.avatar.current.casefold() == a.name.casefold():
            self.controller.settings.avatar.current = None
            self.controller.save()
        self.refresh()
        self.controller.avatars_changed.emit()

    def use_selected(self) -> None:
        a = self.selected()
        if a is not None:
            self.controller.use_avatar(a.name)
            self.refresh(select=a.name)

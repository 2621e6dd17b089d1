"""Avatars: the library as a gallery; add pictures, draw cartoons, rename, delete, pick the one to use."""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListView,
                               QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from avatarcam.avatars import Avatar
from avatarcam.errors import AvatarCamError

from .. import icons, theme
from ..controller import AppController
from ..theme import GRID
from ..widgets import Card, Page, inline_message, muted, show_message
from .creator_card import CreatorCard

log = logging.getLogger(__name__)

IMAGE_FILTER = "Pictures (*.png *.jpg *.jpeg *.webp *.bmp *.gif *.tif *.tiff);;All files (*)"
NAME_ROLE = Qt.UserRole + 1


class AvatarsPage(Page):
    key = "avatars"
    title = "Avatars"
    subtitle = "Pick who appears on camera. Drop a portrait here, or build a cartoon below."

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.setAcceptDrops(True)
        row = QHBoxLayout()
        row.setSpacing(2 * GRID)

        # -- left: gallery and the two ways to add --------------------------------------------
        left = QVBoxLayout()
        left.setSpacing(2 * GRID)
        tools = QHBoxLayout()
        tools.setSpacing(GRID)
        c = theme.current()
        self.add_btn = QPushButton(icons.icon("plus", c.text), "Add picture…")
        self.add_btn.clicked.connect(self.choose_image)
        tools.addWidget(self.add_btn)
        tools.addStretch(1)
        self.count_label = muted("", wrap=False)
        tools.addWidget(self.count_label)
        left.addLayout(tools)

        self.model = QStandardItemModel(self)
        self.gallery = QListView()
        self.gallery.setObjectName("gallery")
        self.gallery.setModel(self.model)
        self.gallery.setViewMode(QListView.IconMode)
        self.gallery.setIconSize(QSize(96, 96))
        self.gallery.setGridSize(QSize(128, 136))
        self.gallery.setResizeMode(QListView.Adjust)
        self.gallery.setMovement(QListView.Static)
        self.gallery.setSpacing(GRID // 2)
        self.gallery.setUniformItemSizes(True)
        self.gallery.setWordWrap(True)
        self.gallery.setMinimumHeight(300)
        self.gallery.selectionModel().currentChanged.connect(lambda *_: self._show_selected())
        self.gallery.doubleClicked.connect(lambda *_: self.use_selected())
        left.addWidget(self.gallery, 1)
        self.drop_hint = muted("Tip: drag a PNG or JPEG portrait onto this page to add it.")
        left.addWidget(self.drop_hint)
        self.add_error = inline_message()
        left.addWidget(self.add_error)

        row.addLayout(left, 3)

        # -- right: the selected avatar ---------------------------------------------------------
        self.details = Card("Selected avatar")
        self.details.setMinimumWidth(300)
        self.big = QLabel()
        self.big.setFixedSize(160, 160)
        self.big.setAlignment(Qt.AlignCenter)
        self.details.add(self.big)
        self.kind_label = muted("")
        self.details.add(self.kind_label)
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
        self.details.add(form)
        self.detail_msg = inline_message()
        self.details.add(self.detail_msg)
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
        self.details.add(brow)

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
        self.details.add(self.confirm)

        self.use_btn = QPushButton("Use this avatar")
        self.use_btn.setObjectName("primary")
        self.use_btn.clicked.connect(self.use_selected)
        self.details.add(self.use_btn)
        self.details.layout_.addStretch(1)
        row.addWidget(self.details, 2)
        self.body.addLayout(row, 1)
        self.creator = CreatorCard(controller)
        self.creator.created.connect(self._created)
        self.body.addWidget(self.creator)

        controller.avatars_changed.connect(self.refresh)
        controller.settings_changed.connect(self._placeholder_model)
        self.refresh()

    # -- gallery --------------------------------------------------------------------------------
    def refresh(self, select: str | None = None) -> None:
        keep = select or self.selected_name() or self.controller.settings.avatar.current
        current = self.controller.current_avatar()
        self.model.clear()
        avatars = self.controller.library.list()
        for a in avatars:
            label = a.name + ("  ✓" if current is not None and a.slug == current.slug else "")
            thumb = QPixmap(str(a.thumb_path))
            icon = QIcon(thumb)
            icon.addPixmap(thumb, QIcon.Selected)  # no selection tint over the face
            item = QStandardItem(icon, label)
            item.setData(a.name, NAME_ROLE)
            item.setEditable(False)
            item.setToolTip(f"{a.name} — {a.kind}" + (f", seed {a.seed}" if a.seed is not None else ""))
            self.model.appendRow(item)
        n = len(avatars)
        self.count_label.setText(f"{n} avatar{'s' if n != 1 else ''}" if n else "No avatars yet")
        row = next((i for i, a in enumerate(avatars) if keep and a.name.casefold() == keep.casefold()), 0)
        if avatars:
            self.gallery.setCurrentIndex(self.model.index(row, 0))
        self._show_selected()

    def selected_name(self) -> str | None:
        idx = self.gallery.currentIndex() if hasattr(self, "gallery") else None
        return idx.data(NAME_ROLE) if idx is not None and idx.isValid() else None

    def selected(self) -> Avatar | None:
        name = self.selected_name()
        if not name:
            return None
        try:
            return self.controller.library.get(name)
        except AvatarCamError:
            return None

    def _placeholder_model(self) -> None:
        self.model_edit.setPlaceholderText(f"Same as settings ({self.controller.settings.engine.model})")

    def _show_selected(self) -> None:
        a = self.selected()
        self.confirm.hide()
        show_message(self.detail_msg, "")
        self._placeholder_model()
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

    # -- adding ---------------------------------------------------------------------------------
    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a picture as an avatar", str(Path.home()), IMAGE_FILTER)
        if path:
            self.add_image_file(path)

    def add_image_file(self, path: str | Path) -> Avatar | None:
        """Add a picture; an unusable file shows why, inline."""
        try:
            avatar = self.controller.library.add_image(path)
        except AvatarCamError as exc:
            show_message(self.add_error, f"Could not add {Path(path).name}: {exc}")
            return None
        except OSError as exc:
            show_message(self.add_error, f"Could not add {Path(path).name}: {exc.strerror or exc}")
            return None
        show_message(self.add_error, self.controller.library.fit_advice(avatar) or "", kind="warning")
        self.refresh(select=avatar.name)
        self.controller.avatars_changed.emit()
        return avatar

    def _created(self, name: str) -> None:
        show_message(self.add_error, "")
        self.refresh(select=name)
        self.controller.avatars_changed.emit()

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not files:
            show_message(self.add_error, "Only files on this computer can be added (not web links).")
            return
        for f in files:
            self.add_image_file(f)
        event.acceptProposedAction()

    # -- editing --------------------------------------------------------------------------------
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

"""Avatars: the library as a gallery; add pictures, pick the one to use. The selected avatar's card
(rename, prompt, delete) is `avatar_details.py`, the creator below the gallery `creator_card.py`."""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QListView, QPushButton, QVBoxLayout, QWidget

from avatarcam.avatars import Avatar
from avatarcam.errors import AvatarCamError

from .. import icons, theme
from ..controller import AppController
from ..theme import GRID
from ..widgets import Page, inline_message, muted, show_message
from .avatar_details import DetailsCard
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
        self.details = DetailsCard(controller, self.selected, self.refresh)
        row.addWidget(self.details, 2)
        self.body.addLayout(row, 1)
        self.creator = CreatorCard(controller)
        self.creator.created.connect(self._created)
        self.body.addWidget(self.creator)

        controller.avatars_changed.connect(self.refresh)
        controller.settings_changed.connect(self.details.placeholder_model)
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

    def _show_selected(self) -> None:
        self.details.show_avatar(self.selected())

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
        show_message(self.add_error, avatar.fit_advice() or "", kind="warning")
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

    def use_selected(self) -> None:
        self.details.use_selected()

"""The OBS page's keyed-avatar card: put a green-screen avatar, cut out, into a scene of the user's.

Why a card of its own: it is the one OBS feature that adds something to the user's scene (and
takes it away again), so it says so next to its switch.
"""
from __future__ import annotations

import sys

from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout

from avatarcam.obs_keyed import camera_input

from ..controller import AppController
from ..theme import GRID
from ..widgets import Card, muted


class KeyedCard(Card):
    """`obs.keyed` and `obs.keyed_scene`; saved on every change."""

    def __init__(self, controller: AppController):
        super().__init__("Avatar over your scene", "For avatars with a green-screen background (Avatars → Create → "
                                                   "Background). OBS cuts the screen away with a Chroma Key.")
        self.controller = controller
        self._loading = True
        self.keyed = QCheckBox("Add the avatar, keyed, to this scene while streaming (removed after)")
        self.keyed.toggled.connect(self.save)
        self.add(self.keyed)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldsStayAtSizeHint)
        form.setSpacing(GRID)
        form.setHorizontalSpacing(2 * GRID)
        self.scene = QComboBox()
        self.scene.setEditable(True)
        self.scene.setMinimumWidth(280)
        self.scene.lineEdit().setPlaceholderText("the scene above")
        self.scene.lineEdit().editingFinished.connect(self.save)
        self.scene.activated.connect(self.save)
        form.addRow("Scene", self.scene)
        self.add(form)
        kind, _ = camera_input(None, sys.platform)
        self.add(muted(f"It captures AvatarCam's camera with OBS's {kind} source; move and size it in OBS as you "
                       "like: the next stream puts it back there."))

    def load(self) -> None:
        self._loading = True
        try:
            o = self.controller.settings.obs
            self.keyed.setChecked(o.keyed)
            self.scene.setEditText(o.keyed_scene or "")
        finally:
            self._loading = False

    def save(self) -> None:
        if self._loading:
            return
        o = self.controller.settings.obs
        o.keyed = self.keyed.isChecked()
        o.keyed_scene = self.scene.currentText().strip() or None
        self.controller.save()

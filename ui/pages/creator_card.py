"""The avatar creator on the Avatars page: every generator choice as a control, a "random" per
control and for all, the seed, a live preview, and a warning when a green screen would cut into
the avatar.

Why here and not a dialog: the gallery beside it shows the result as soon as it is created, and
the library page is where users look for "make my own".
"""
from __future__ import annotations

import secrets

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout

from avatarcam.errors import AvatarCamError
from engine.toon import random_identity, render_portrait
from engine.toon.chroma import conflict_message
from engine.toon.creator import CONTROLS, reroll, set_control, set_key
from engine.toon.identity import Identity

from .. import icons, theme
from ..controller import AppController
from ..creator_controls import ControlWidget
from ..theme import GRID
from ..widgets import Card, inline_message, show_message

PREVIEW = 176
COLUMNS = 2   # control columns beside the preview


def pixmap(pixels: np.ndarray) -> QPixmap:
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels)
    return QPixmap.fromImage(QImage(data.data, w, h, 3 * w, QImage.Format_RGB888).copy())


class CreatorCard(Card):
    """`look` is the identity being built; `created(name)` fires once it is in the library."""

    created = Signal(str)

    def __init__(self, controller: AppController):
        super().__init__("Create a cartoon avatar", "Choose each part, or roll the dice; every choice is one the "
                                                    "default model was trained on.")
        self.controller = controller
        self.rng = np.random.default_rng()
        c = theme.current()
        row = QHBoxLayout()
        row.setSpacing(2 * GRID)
        side = QVBoxLayout()
        side.setSpacing(GRID)
        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW, PREVIEW)
        self.preview.setAlignment(Qt.AlignCenter)
        side.addWidget(self.preview)
        srow = QHBoxLayout()
        srow.addWidget(QLabel("Seed"))
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setMinimumWidth(110)
        self.seed.editingFinished.connect(lambda: self.set_look(random_identity(self.seed.value())))
        srow.addWidget(self.seed, 1)
        side.addLayout(srow)
        self.reroll_btn = QPushButton(icons.icon("dice", c.text), "Random avatar")
        self.reroll_btn.clicked.connect(self.reroll)
        side.addWidget(self.reroll_btn)
        self.name = QLineEdit()
        self.name.setPlaceholderText("Name (optional)")
        side.addWidget(self.name)
        self.cartoon_btn = QPushButton("Create avatar")
        self.cartoon_btn.setObjectName("primary")
        self.cartoon_btn.clicked.connect(self.create)
        side.addWidget(self.cartoon_btn)
        side.addStretch(1)
        row.addLayout(side)
        grid = QGridLayout()
        grid.setHorizontalSpacing(GRID)
        grid.setVerticalSpacing(GRID // 2)
        self.controls: dict[str, ControlWidget] = {}
        self.dice: dict[str, QPushButton] = {}
        per_column = -(-len(CONTROLS) // COLUMNS)
        for i, control in enumerate(CONTROLS):
            r, col = i % per_column, 3 * (i // per_column)
            cw = ControlWidget(control, lambda value, name=control.name: self.change(name, value))
            self.controls[control.name] = cw
            die = QPushButton(icons.icon("dice", c.text), "")
            die.setToolTip(f"Random {control.label.lower()}")
            die.setFlat(True)
            die.clicked.connect(lambda _=False, name=control.name: self.random_control(name))
            self.dice[control.name] = die
            grid.addWidget(QLabel(control.label), r, col)
            grid.addWidget(cw.widget, r, col + 1)
            grid.addWidget(die, r, col + 2)
        row.addLayout(grid, 1)
        self.add(row)
        self.msg = inline_message()
        self.add(self.msg)
        self.look: Identity = random_identity(secrets.randbelow(100000))
        self.set_look(self.look)

    # -- editing ------------------------------------------------------------------------------------
    def set_look(self, ident: Identity) -> None:
        """Show `ident` in every control, the preview and the key warning."""
        self.look = ident
        self.seed.blockSignals(True)
        self.seed.setValue(ident.seed)
        self.seed.blockSignals(False)
        for cw in self.controls.values():
            cw.show(ident)
        self.preview.setPixmap(pixmap(render_portrait(ident, PREVIEW)))
        clash = conflict_message(ident)
        show_message(self.msg, clash[0].upper() + clash[1:] + "." if clash else "", kind="warning")

    def change(self, name: str, value) -> None:
        try:
            if name == "background" and isinstance(value, str) and value.startswith("chroma:"):
                ident = set_key(self.look, value.split(":", 1)[1])
            else:
                ident = set_control(self.look, name, value)
        except ValueError as exc:
            show_message(self.msg, str(exc))
            return
        self.set_look(ident)

    def random_control(self, name: str) -> None:
        self.set_look(reroll(self.look, name, self.rng))

    def reroll(self) -> None:
        """A fresh seed and everything it draws (the old "re-roll")."""
        self.set_look(random_identity(int(self.rng.integers(2**31 - 1))))

    def create(self) -> str | None:
        try:
            avatar = self.controller.library.new_cartoon(identity=self.look, name=self.name.text().strip() or None)
        except AvatarCamError as exc:
            show_message(self.msg, f"Could not create the avatar: {exc}")
            return None
        self.name.clear()
        self.created.emit(avatar.name)
        return avatar.name

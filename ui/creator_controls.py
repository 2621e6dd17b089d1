"""One widget per creator control (engine.toon.creator.CONTROLS), built from the control's kind.

Why generic: the controls are data (a name, a kind, the generator's options), so the form is the
table drawn, and a new option in the generator shows up here without a UI change.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QSlider, QWidget

from engine.toon import identity as gen
from engine.toon.chroma import KEY_COLOURS, key_name
from engine.toon.creator import Control
from engine.toon.identity import Identity

SLIDER_STEPS = 100
SEED_SHADE = "seed's shade"   # a colour the seed drew a little off its palette entry


def _find(box: QComboBox, value) -> int:
    """Index of the item holding `value` (findData compares Python tuples by identity)."""
    return next((i for i in range(box.count()) if box.itemData(i) == value), -1)


def swatch(colour) -> QIcon:
    pix = QPixmap(16, 16)
    pix.fill(QColor(*colour))
    return QIcon(pix)


class ControlWidget:
    """A widget for one control: `show(identity)` fills it, `changed(value)` fires on user edits."""

    def __init__(self, control: Control, changed: Callable[[object], None]):
        self.control, self._changed = control, changed
        self.widget: QWidget = self._build()

    def _build(self) -> QWidget:
        c = self.control
        if c.kind == "toggle":
            w = QCheckBox()
            w.toggled.connect(lambda on: self._changed(bool(on)))
            return w
        if c.kind == "size":
            w = QSlider(Qt.Horizontal)
            w.setRange(0, SLIDER_STEPS)
            w.setMinimumWidth(120)
            w.valueChanged.connect(lambda v: self._changed(self._size(v)))
            return w
        w = QComboBox()
        w.setMinimumWidth(165)
        if c.name == "background":
            for option in c.options:
                if option != "chroma":
                    w.addItem(option.capitalize(), option)
            for key, colour in KEY_COLOURS.items():
                w.addItem(swatch(colour), f"{key.capitalize()} screen", f"chroma:{key}")
        elif c.kind == "colour":
            for colour in c.options:
                w.addItem(swatch(colour), f"#{colour[0]:02x}{colour[1]:02x}{colour[2]:02x}", tuple(colour))
        else:
            for option in c.options:
                w.addItem(option.capitalize(), option)
        w.activated.connect(lambda i: self._changed(w.itemData(i)))
        return w

    def _size(self, step: int) -> float:
        lo, hi = gen.SIZE_RANGES[self.control.name]
        return lo + (hi - lo) * step / SLIDER_STEPS

    def show(self, ident: Identity) -> None:
        """Show `ident`'s value without firing `changed`."""
        c, w = self.control, self.widget
        value = getattr(ident, c.name)
        w.blockSignals(True)
        try:
            if c.kind == "toggle":
                w.setChecked(bool(value))
            elif c.kind == "size":
                lo, hi = gen.SIZE_RANGES[c.name]
                w.setValue(round((value - lo) / (hi - lo) * SLIDER_STEPS))
            else:
                if c.name == "background" and value == "chroma":
                    value = f"chroma:{key_name(ident.bg_a)}"
                i = _find(w, tuple(value) if c.kind == "colour" else value)
                if i < 0 and c.kind == "colour":   # a seed's own shade, near a palette entry
                    old = w.findText(SEED_SHADE)   # the previous look's shade goes
                    if old >= 0:
                        w.removeItem(old)
                    w.insertItem(0, swatch(value), SEED_SHADE, tuple(value))
                    i = 0
                w.setCurrentIndex(i)
            w.setEnabled(not (c.name in ("bg_a", "bg_b") and ident.background == "chroma"))
        finally:
            w.blockSignals(False)

"""The level meter with the noise gate's threshold on it: a marker the user drags along the bar.

Why on the meter: the right threshold is just above the room's noise and below the voice, and
both are visible on the bar while the microphone test runs, so the user sets it where they see it.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen

from . import theme
from .widgets import LevelBar

FLOOR_DB = -60.0   # the bar's left end (LevelBar's scale)


class GateLevelBar(LevelBar):
    """A LevelBar that shows the gate (grey below it) and moves it on click and drag.

    `threshold_moved` fires while dragging (to update a label), `threshold_set` once on release
    (to save and apply it); both carry dBFS. None means the gate is off: no marker, no dragging.
    """

    threshold_moved = Signal(float)
    threshold_set = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.threshold_db: float | None = None
        self._dragging = False
        self.setMinimumHeight(22)
        self.setFixedHeight(22)

    def set_threshold(self, db: float | None) -> None:
        self.threshold_db = None if db is None else min(0.0, max(FLOOR_DB, float(db)))
        self.setCursor(Qt.SizeHorCursor if db is not None else Qt.ArrowCursor)
        self.update()

    def db_at(self, x: float) -> float:
        """The level under pixel column `x` (what a drag there sets)."""
        frac = min(1.0, max(0.0, x / max(1, self.width())))
        return round(FLOOR_DB + frac * -FLOOR_DB, 1)

    def x_of(self, db: float) -> float:
        return (db - FLOOR_DB) / -FLOOR_DB * self.width()

    def mousePressEvent(self, event) -> None:
        if self.threshold_db is None or event.button() != Qt.LeftButton:
            return super().mousePressEvent(event)
        self._dragging = True
        self._move_to(event.position().x())

    def mouseMoveEvent(self, event) -> None:
        if self._dragging:
            self._move_to(event.position().x())

    def mouseReleaseEvent(self, event) -> None:
        if self._dragging:
            self._dragging = False
            self._move_to(event.position().x())
            self.threshold_set.emit(self.threshold_db)

    def _move_to(self, x: float) -> None:
        self.set_threshold(self.db_at(x))
        self.threshold_moved.emit(self.threshold_db)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.threshold_db is None:
            return
        c = theme.current()
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        x = self.x_of(self.threshold_db)
        shade = QColor(c.text)
        shade.setAlpha(40)
        p.setPen(Qt.NoPen)
        p.setBrush(shade)
        r = QRectF(self.rect())
        p.drawRoundedRect(QRectF(0, 0, x, r.height()), r.height() / 2, r.height() / 2)
        p.setPen(QPen(QColor(c.text), 2))
        p.drawLine(QPointF(x, 0), QPointF(x, r.height()))
        p.setBrush(QColor(c.text))
        p.setPen(Qt.NoPen)
        p.drawPolygon([QPointF(x - 5, 0), QPointF(x + 5, 0), QPointF(x, 6)])
        p.end()

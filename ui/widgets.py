"""Small building blocks every page uses, so spacing and type stay consistent (8 px grid)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSizePolicy, QVBoxLayout,
                               QWidget)

from . import theme
from .theme import GRID


class Page(QScrollArea):
    """A scrollable page: title, one-line subtitle, then cards stacked with 16 px gaps."""

    key = ""
    title = ""
    subtitle = ""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        inner = QWidget()
        inner.setObjectName("page")
        self.setWidget(inner)
        self.body = QVBoxLayout(inner)
        self.body.setContentsMargins(3 * GRID, 3 * GRID, 3 * GRID, 3 * GRID)
        self.body.setSpacing(2 * GRID)
        head = QVBoxLayout()
        head.setSpacing(GRID // 2)
        t = QLabel(self.title)
        t.setObjectName("pageTitle")
        sub = QLabel(self.subtitle)
        sub.setObjectName("pageSubtitle")
        sub.setWordWrap(True)
        head.addWidget(t)
        head.addWidget(sub)
        self.body.addLayout(head)


class Card(QFrame):
    """A rounded surface with an optional section title and hint."""

    def __init__(self, title: str = "", hint: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("card")
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(2 * GRID, 2 * GRID, 2 * GRID, 2 * GRID)
        self.layout_.setSpacing(GRID + GRID // 2)
        if title:
            t = QLabel(title)
            t.setObjectName("sectionTitle")
            self.layout_.addWidget(t)
        if hint:
            h = QLabel(hint)
            h.setObjectName("note")
            h.setWordWrap(True)
            self.layout_.addWidget(h)

    def add(self, item) -> None:
        if isinstance(item, QWidget):
            self.layout_.addWidget(item)
        else:
            self.layout_.addLayout(item)


def muted(text: str, wrap: bool = True) -> QLabel:
    label = QLabel(text)
    label.setObjectName("note")
    label.setWordWrap(wrap)
    return label


def inline_message(name: str = "error") -> QLabel:
    """An inline status line under a control (hidden while empty)."""
    label = QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    label.hide()
    return label


def show_message(label: QLabel, text: str, kind: str = "error") -> None:
    label.setObjectName(kind)
    label.style().unpolish(label)
    label.style().polish(label)
    label.setText(text)
    label.setVisible(bool(text))


class Banner(QFrame):
    """The one place errors and warnings appear: message, the fix, a button to the page that fixes it."""

    action = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.setProperty("level", "error")
        row = QHBoxLayout(self)
        row.setContentsMargins(2 * GRID, GRID + GRID // 2, GRID, GRID + GRID // 2)
        row.setSpacing(2 * GRID)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row.addWidget(self.text, 1)
        self.fix = QPushButton()
        self.fix.clicked.connect(lambda: self.action.emit(self._page or ""))
        row.addWidget(self.fix)
        self.close_btn = QPushButton("Dismiss")
        self.close_btn.clicked.connect(self.clear)
        row.addWidget(self.close_btn)
        self._page: str | None = None
        self.level = ""
        # the area gives the banner its margins and takes no space while there is nothing to say
        self.area = QWidget()
        box = QVBoxLayout(self.area)
        box.setContentsMargins(3 * GRID, 2 * GRID, 3 * GRID, 0)
        box.addWidget(self)
        self.area.hide()

    def show_message(self, level: str, text: str, page: str | None = None, page_title: str = "") -> None:
        self.level = level
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.text.setText(text)
        self._page = page
        self.fix.setVisible(bool(page))
        self.fix.setText(f"Open {page_title or page}")
        self.show()
        self.area.show()

    def clear(self) -> None:
        self.level = ""
        self.text.clear()
        self.area.hide()


class StatTile(QFrame):
    """One number with its label (fps, latency, ...)."""

    def __init__(self, label: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("card")
        col = QVBoxLayout(self)
        col.setContentsMargins(2 * GRID, GRID + GRID // 2, 2 * GRID, GRID + GRID // 2)
        col.setSpacing(GRID // 2)
        self.value = QLabel("–")
        self.value.setObjectName("statValue")
        self.caption = QLabel(label)
        self.caption.setObjectName("statLabel")
        self.detail = QLabel("")
        self.detail.setObjectName("statLabel")
        col.addWidget(self.caption)
        col.addWidget(self.value)
        col.addWidget(self.detail)

    def set(self, value: str, detail: str = "") -> None:
        self.value.setText(value)
        self.detail.setText(detail)


def to_qimage(frame: np.ndarray) -> QImage:
    """uint8 HxWx3 RGB -> QImage that owns a copy (the array may be reused by the engine)."""
    frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    h, w, _ = frame.shape
    return QImage(frame.data, w, h, 3 * w, QImage.Format_RGB888).copy()


class PreviewView(QWidget):
    """Draws the latest frame, scaled with its aspect ratio, centred on a dark rounded stage."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.image: QImage | None = None
        self.placeholder = "Press Start to see your avatar as the camera sees it."
        self.dimmed = False
        self.frames_drawn = 0
        self.setMinimumSize(QSize(320, 240))
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def set_frame(self, frame: np.ndarray | QImage | None, dimmed: bool = False) -> None:
        if frame is None:
            self.image = None
        else:
            self.image = frame if isinstance(frame, QImage) else to_qimage(frame)
            self.frames_drawn += 1
        self.dimmed = dimmed
        self.update()

    def target_rect(self) -> QRectF:
        """Where the image goes: the largest rect of its aspect inside the widget (letterboxed)."""
        area = QRectF(self.rect()).adjusted(GRID, GRID, -GRID, -GRID)
        if self.image is None or self.image.width() == 0:
            return area
        scale = min(area.width() / self.image.width(), area.height() / self.image.height())
        w, h = self.image.width() * scale, self.image.height() * scale
        return QRectF(area.center().x() - w / 2, area.center().y() - h / 2, w, h)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.setRenderHint(QPainter.SmoothPixmapTransform)
        stage = QPainterPath()
        stage.addRoundedRect(QRectF(self.rect()), 12, 12)
        p.fillPath(stage, QColor("#0E1014"))
        p.setClipPath(stage)
        if self.image is not None:
            target = self.target_rect()
            clip = QPainterPath()
            clip.addRoundedRect(target, 8, 8)
            p.setClipPath(clip)
            p.drawImage(target, self.image)
            if self.dimmed:
                p.fillRect(target, QColor(14, 16, 20, 140))
            p.setClipPath(stage)
        if self.image is None or self.dimmed:
            p.setPen(QColor("#C9CED8"))
            f = QFont(self.font())
            f.setPointSizeF(f.pointSizeF() + 1)
            p.setFont(f)
            p.drawText(QRectF(self.rect()).adjusted(3 * GRID, 0, -3 * GRID, -2 * GRID),
                       Qt.AlignHCenter | Qt.AlignBottom | Qt.TextWordWrap, self.placeholder)
        p.end()


class LevelBar(QWidget):
    """A microphone level meter: -60..0 dBFS, green / amber / red zones."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.db = -90.0
        self.setFixedHeight(GRID + GRID // 2)
        self.setMinimumWidth(160)

    def set_level(self, db: float) -> None:
        self.db = db
        self.update()

    def fraction(self) -> float:
        return min(1.0, max(0.0, (self.db + 60.0) / 60.0))

    def paintEvent(self, event) -> None:
        c = theme.current()
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        r = QRectF(self.rect())
        p.setPen(Qt.NoPen)
        p.setBrush(QColor(c.sunken))
        p.drawRoundedRect(r, r.height() / 2, r.height() / 2)
        frac = self.fraction()
        if frac > 0:
            color = c.success if self.db < -12 else c.warning if self.db < -3 else c.danger
            p.setBrush(QColor(color))
            p.drawRoundedRect(QRectF(r.x(), r.y(), max(r.height(), r.width() * frac), r.height()),
                              r.height() / 2, r.height() / 2)
        p.end()

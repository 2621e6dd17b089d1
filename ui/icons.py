"""Icons drawn with QPainter: crisp at any DPI, recoloured with the theme, no image files to ship."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

_SIZE = 64  # drawn at 64 px, scaled down by Qt


def _canvas(size: int = _SIZE) -> tuple[QPixmap, QPainter]:
    pix = QPixmap(size, size)
    pix.fill(Qt.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.Antialiasing)
    return pix, p


def _stroke(p: QPainter, color: str, width: float = 5.0) -> None:
    pen = QPen(QColor(color), width, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin)
    p.setPen(pen)
    p.setBrush(Qt.NoBrush)


def _avatar(p: QPainter, c: str) -> None:
    _stroke(p, c)
    p.drawEllipse(QPointF(32, 24), 11, 11)
    path = QPainterPath()
    path.moveTo(12, 54)
    path.cubicTo(14, 40, 50, 40, 52, 54)
    p.drawPath(path)


def _sliders(p: QPainter, c: str) -> None:
    _stroke(p, c)
    for y, x in ((18, 22), (32, 42), (46, 28)):
        p.drawLine(QPointF(10, y), QPointF(54, y))
        p.setBrush(QColor(c))
        p.drawEllipse(QPointF(x, y), 5.5, 5.5)
        p.setBrush(Qt.NoBrush)


def _mic(p: QPainter, c: str) -> None:
    _stroke(p, c)
    p.drawRoundedRect(QRectF(23, 8, 18, 30), 9, 9)
    path = QPainterPath()
    path.moveTo(14, 30)
    path.cubicTo(14, 52, 50, 52, 50, 30)
    p.drawPath(path)
    p.drawLine(QPointF(32, 47), QPointF(32, 56))
    p.drawLine(QPointF(24, 56), QPointF(40, 56))


def _broadcast(p: QPainter, c: str) -> None:
    _stroke(p, c)
    p.setBrush(QColor(c))
    p.drawEllipse(QPointF(32, 32), 5, 5)
    p.setBrush(Qt.NoBrush)
    for r in (14, 24):
        rect = QRectF(32 - r, 32 - r, 2 * r, 2 * r)
        p.drawArc(rect, -40 * 16, 80 * 16)
        p.drawArc(rect, 140 * 16, 80 * 16)


def _monitor(p: QPainter, c: str) -> None:
    _stroke(p, c)
    p.drawRoundedRect(QRectF(8, 12, 48, 32), 5, 5)
    p.drawLine(QPointF(24, 54), QPointF(40, 54))
    p.drawLine(QPointF(32, 44), QPointF(32, 54))
    p.setBrush(QColor(c))
    tri = QPainterPath()
    tri.moveTo(28, 21)
    tri.lineTo(39, 28)
    tri.lineTo(28, 35)
    tri.closeSubpath()
    p.drawPath(tri)


def _plus(p: QPainter, c: str) -> None:
    _stroke(p, c, 6)
    p.drawLine(QPointF(32, 14), QPointF(32, 50))
    p.drawLine(QPointF(14, 32), QPointF(50, 32))


def _dice(p: QPainter, c: str) -> None:
    _stroke(p, c)
    p.drawRoundedRect(QRectF(12, 12, 40, 40), 8, 8)
    p.setBrush(QColor(c))
    for x, y in ((23, 23), (41, 41), (32, 32), (41, 23), (23, 41)):
        p.drawEllipse(QPointF(x, y), 3.5, 3.5)


def _play(p: QPainter, c: str) -> None:
    p.setPen(Qt.NoPen)
    p.setBrush(QColor(c))
    tri = QPainterPath()
    tri.moveTo(20, 12)
    tri.lineTo(52, 32)
    tri.lineTo(20, 52)
    tri.closeSubpath()
    p.drawPath(tri)


def _stop(p: QPainter, c: str) -> None:
    p.setPen(Qt.NoPen)
    p.setBrush(QColor(c))
    p.drawRoundedRect(QRectF(16, 16, 32, 32), 5, 5)


def _window(p: QPainter, c: str) -> None:
    _stroke(p, c)
    p.drawRoundedRect(QRectF(10, 14, 44, 36), 5, 5)
    p.drawLine(QPointF(10, 24), QPointF(54, 24))


def _quit(p: QPainter, c: str) -> None:
    _stroke(p, c)
    p.drawArc(QRectF(14, 14, 36, 36), 120 * 16, 300 * 16)
    p.drawLine(QPointF(32, 8), QPointF(32, 30))


def _keys(p: QPainter, c: str) -> None:
    """A keyboard: an outline and three rows of keys."""
    _stroke(p, c)
    p.drawRoundedRect(QRectF(6, 16, 52, 32), 5, 5)
    for y in (25, 33):
        for x in range(13, 53, 8):
            p.drawPoint(QPointF(x, y))
    p.drawLine(QPointF(20, 41), QPointF(44, 41))


_DRAW = {"avatar": _avatar, "keys": _keys, "anchors": _sliders, "mic": _mic, "obs": _broadcast, "live": _monitor,
         "plus": _plus, "dice": _dice, "play": _play, "stop": _stop, "window": _window, "quit": _quit}


def icon(name: str, color: str) -> QIcon:
    """A named line icon in ``color``."""
    pix, p = _canvas()
    _DRAW[name](p, color)
    p.end()
    return QIcon(pix)


def app_pixmap(status_color: str, size: int = 64, accent: str = "#4C63D9") -> QPixmap:
    """The AvatarCam mark: a rounded camera-face tile with a status dot in the corner."""
    pix, p = _canvas(size)
    s = size / 64.0
    p.scale(s, s)
    p.setPen(Qt.NoPen)
    p.setBrush(QColor(accent))
    p.drawRoundedRect(QRectF(4, 4, 56, 56), 14, 14)
    p.setBrush(QColor("#FFFFFF"))
    p.drawEllipse(QPointF(23, 27), 4.5, 5.5)
    p.drawEllipse(QPointF(41, 27), 4.5, 5.5)
    pen = QPen(QColor("#FFFFFF"), 4.5, Qt.SolidLine, Qt.RoundCap)
    p.setPen(pen)
    p.setBrush(Qt.NoBrush)
    p.drawArc(QRectF(20, 26, 24, 18), -20 * 16, -140 * 16)
    p.setPen(QPen(QColor("#FFFFFF"), 3))
    p.setBrush(QColor(status_color))
    p.drawEllipse(QPointF(50, 50), 10, 10)
    p.end()
    return pix


def app_icon(status_color: str, accent: str = "#4C63D9") -> QIcon:
    out = QIcon()
    for size in (16, 22, 24, 32, 48, 64, 128):
        out.addPixmap(app_pixmap(status_color, size, accent))
    return out


def dot_pixmap(color: str, size: int = 10) -> QPixmap:
    pix, p = _canvas(size)
    p.setPen(Qt.NoPen)
    p.setBrush(QColor(color))
    p.drawEllipse(QRectF(0, 0, size, size))
    p.end()
    return pix



"""Light and dark palettes plus one stylesheet, so every page shares spacing, radii and colours.

Why our own palette instead of the platform style alone: Fusion with a hand-picked palette looks the
same on Linux, Windows and macOS, and the screenshots in the docs match what users see. The mode
follows the system colour scheme unless settings.ui.theme says "light" or "dark".
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

GRID = 8  # every margin and gap is a multiple of this


@dataclass(frozen=True)
class Colors:
    name: str
    window: str
    surface: str
    sunken: str
    border: str
    text: str
    muted: str
    accent: str
    accent_text: str
    accent_soft: str
    success: str
    warning: str
    danger: str
    danger_soft: str
    warning_soft: str


LIGHT = Colors("light", window="#F4F5F7", surface="#FFFFFF", sunken="#ECEEF2", border="#DDE1E7",
               text="#1D2330", muted="#5E6878", accent="#4C63D9", accent_text="#FFFFFF",
               accent_soft="#E6EAFB", success="#18905A", warning="#B86E00", danger="#C8374F",
               danger_soft="#FBE9EC", warning_soft="#FFF3DF")
DARK = Colors("dark", window="#15171C", surface="#1E2128", sunken="#262A32", border="#323743",
              text="#E7E9EE", muted="#9AA3B2", accent="#7D92FF", accent_text="#10131A",
              accent_soft="#262D4A", success="#3CC48A", warning="#E3A13B", danger="#F06A80",
              danger_soft="#3A2229", warning_soft="#3A2F1C")

STATUS_COLORS = {"idle": "#8A94A6", "busy": "#E0A030", "live": "#2BB673", "error": "#E0475F"}

_current = LIGHT


def current() -> Colors:
    """The palette in use (pages read it when they paint)."""
    return _current


def system_prefers_dark() -> bool:
    """The desktop's colour scheme (Qt >= 6.5); falls back to the window colour's lightness."""
    hints = QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", lambda: Qt.ColorScheme.Unknown)()
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    return QGuiApplication.palette().color(QPalette.Window).lightness() < 110


def resolve(mode: str) -> Colors:
    if mode == "dark":
        return DARK
    if mode == "light":
        return LIGHT
    return DARK if system_prefers_dark() else LIGHT


def _palette(c: Colors) -> QPalette:
    p = QPalette()
    roles = {QPalette.Window: c.window, QPalette.WindowText: c.text, QPalette.Base: c.surface,
             QPalette.AlternateBase: c.sunken, QPalette.Text: c.text, QPalette.Button: c.surface,
             QPalette.ButtonText: c.text, QPalette.Highlight: c.accent, QPalette.HighlightedText: c.accent_text,
             QPalette.ToolTipBase: c.surface, QPalette.ToolTipText: c.text, QPalette.PlaceholderText: c.muted,
             QPalette.Link: c.accent, QPalette.Mid: c.border, QPalette.Dark: c.border, QPalette.Light: c.surface}
    for role, value in roles.items():
        p.setColor(role, QColor(value))
    for role in (QPalette.Text, QPalette.WindowText, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, QColor(c.muted))
    return p


_arrow_dir: str | None = None


def _arrow_files(c: Colors) -> dict[str, str]:
    """Chevron PNGs for combo and spin boxes: style sheets take arrow images only as files, so they are
    drawn once per palette into a private temp folder that is removed at exit."""
    global _arrow_dir
    import atexit
    import shutil
    import tempfile

    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QPainter, QPen, QPixmap

    if _arrow_dir is None:
        _arrow_dir = tempfile.mkdtemp(prefix="avatarcam-ui-")
        atexit.register(shutil.rmtree, _arrow_dir, True)
    out = {}
    for name, color, up in (("down", c.muted, False), ("up", c.muted, True), ("down_off", c.border, False),
                            ("up_off", c.border, True)):
        path = f"{_arrow_dir}/{c.name}-{name}.png"
        pix = QPixmap(20, 12)
        pix.fill(Qt.transparent)
        p = QPainter(pix)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QPen(QColor(color), 2.4, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin))
        ys = (9.0, 3.0) if up else (3.0, 9.0)
        p.drawPolyline([QPointF(4, ys[0]), QPointF(10, ys[1]), QPointF(16, ys[0])])
        p.end()
        pix.save(path)
        out[name] = path
    return out


def stylesheet(c: Colors) -> str:
    arrows = _arrow_files(c)
    return f"""
QWidget {{ font-size: 10pt; }}
QMainWindow, QWidget#page, QWidget#central {{ background: {c.window}; }}
QLabel#pageTitle {{ font-size: 16pt; font-weight: 600; }}
QLabel#pageSubtitle, QLabel.muted, QLabel#muted {{ color: {c.muted}; }}
QLabel#sectionTitle {{ font-size: 11pt; font-weight: 600; }}
QLabel#appTitle {{ font-size: 13pt; font-weight: 700; }}
QLabel#statValue {{ font-size: 16pt; font-weight: 600; }}
QLabel#statLabel {{ color: {c.muted}; font-size: 9pt; }}
QLabel#error {{ color: {c.danger}; }}
QLabel#ok {{ color: {c.success}; }}
QLabel#warning {{ color: {c.warning}; }}
QLabel#note {{ color: {c.muted}; font-size: 9pt; }}
QFrame#card {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 12px; }}
QFrame#sidebar {{ background: {c.surface}; border-right: 1px solid {c.border}; }}
QFrame#banner[level="error"] {{ background: {c.danger_soft}; border: 1px solid {c.danger}; border-radius: 8px; }}
QFrame#banner[level="warning"] {{ background: {c.warning_soft}; border: 1px solid {c.warning}; border-radius: 8px; }}
QFrame#banner[level="info"] {{ background: {c.accent_soft}; border: 1px solid {c.accent}; border-radius: 8px; }}
QListWidget#nav {{ background: transparent; border: none; outline: 0; }}
QListWidget#nav::item {{ padding: 8px 8px; margin: 2px 0; border-radius: 8px; color: {c.text}; }}
QListWidget#nav::item:hover {{ background: {c.sunken}; }}
QListWidget#nav::item:selected {{ background: {c.accent_soft}; color: {c.accent}; font-weight: 600; }}
QListView#gallery {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 12px; padding: 8px; }}
QListView#gallery::item {{ border-radius: 8px; padding: 4px; color: {c.text}; }}
QListView#gallery::item:selected {{ background: {c.accent_soft}; color: {c.text}; }}
QPushButton {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 8px;
              padding: 6px 16px; min-height: 20px; }}
QPushButton:hover {{ border-color: {c.accent}; }}
QPushButton:disabled {{ color: {c.muted}; background: {c.sunken}; }}
QPushButton#primary {{ background: {c.accent}; color: {c.accent_text}; border: 1px solid {c.accent}; font-weight: 600; }}
QPushButton#primary:disabled {{ background: {c.sunken}; color: {c.muted}; border-color: {c.border}; }}
QPushButton#danger {{ color: {c.danger}; }}
QPushButton#dangerSolid {{ background: {c.danger}; color: #FFFFFF; border: 1px solid {c.danger}; font-weight: 600; }}
QPushButton#start {{ background: {c.accent}; color: {c.accent_text}; border: none; font-weight: 600;
                    padding: 8px 24px; }}
QPushButton#start[live="true"] {{ background: {c.danger}; color: #FFFFFF; }}
QPushButton#start:disabled {{ background: {c.sunken}; color: {c.muted}; }}
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox, QPlainTextEdit {{
    background: {c.surface}; border: 1px solid {c.border}; border-radius: 6px; padding: 4px 8px;
    min-height: 20px; selection-background-color: {c.accent}; selection-color: {c.accent_text}; }}
QLineEdit:focus, QSpinBox:focus, QComboBox:focus, QPlainTextEdit:focus {{ border-color: {c.accent}; }}
QLineEdit[invalid="true"], QSpinBox[invalid="true"] {{ border-color: {c.danger}; }}
QComboBox {{ padding-right: 24px; }}
QComboBox::drop-down {{ subcontrol-origin: padding; subcontrol-position: center right; width: 24px; border: none; }}
QComboBox::down-arrow, QSpinBox::down-arrow {{ image: url({arrows["down"]}); width: 10px; height: 6px; }}
QSpinBox::up-arrow {{ image: url({arrows["up"]}); width: 10px; height: 6px; }}
QSpinBox::down-arrow:disabled, QComboBox::down-arrow:disabled {{ image: url({arrows["down_off"]}); }}
QSpinBox::up-arrow:disabled {{ image: url({arrows["up_off"]}); }}
QSpinBox {{ padding: 4px 22px 4px 8px; }}
QSpinBox::up-button {{ subcontrol-origin: border; subcontrol-position: top right; width: 20px; border: none; margin-top: 3px; }}
QSpinBox::down-button {{ subcontrol-origin: border; subcontrol-position: bottom right; width: 20px; border: none; margin-bottom: 3px; }}
QSpinBox::up-button:hover, QSpinBox::down-button:hover {{ background: {c.sunken}; border-radius: 4px; }}
QScrollBar:vertical {{ background: transparent; width: 12px; margin: 4px 2px 4px 0; }}
QScrollBar::handle:vertical {{ background: {c.border}; border-radius: 4px; min-height: 32px; }}
QScrollBar::handle:vertical:hover {{ background: {c.muted}; }}
QScrollBar::add-line, QScrollBar::sub-line {{ height: 0; width: 0; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: transparent; }}
QFrame#topbar {{ background: {c.surface}; border-bottom: 1px solid {c.border}; }}
QComboBox QAbstractItemView {{ background: {c.surface}; border: 1px solid {c.border}; selection-background-color: {c.accent_soft}; selection-color: {c.text}; }}
QCheckBox {{ spacing: 8px; }}
QRadioButton {{ spacing: 8px; }}
QProgressBar {{ background: {c.sunken}; border: none; border-radius: 4px; max-height: 8px; text-align: center; }}
QProgressBar::chunk {{ background: {c.success}; border-radius: 4px; }}
QStatusBar {{ background: {c.surface}; border-top: 1px solid {c.border}; color: {c.muted}; }}
QStatusBar QLabel {{ color: {c.muted}; }}
QScrollArea {{ background: transparent; border: none; }}
QScrollArea > QWidget > QWidget {{ background: transparent; }}
QToolTip {{ background: {c.surface}; color: {c.text}; border: 1px solid {c.border}; padding: 4px; }}
QMenu {{ background: {c.surface}; border: 1px solid {c.border}; padding: 4px; }}
QMenu::item {{ padding: 6px 24px 6px 24px; border-radius: 6px; }}
QMenu::item:selected {{ background: {c.accent_soft}; color: {c.text}; }}
QMenu::item:disabled {{ color: {c.muted}; }}
QMenu::separator {{ height: 1px; background: {c.border}; margin: 4px 8px; }}
"""


def apply_theme(app: QApplication, mode: str = "system") -> Colors:
    """Fusion + our palette + stylesheet; returns the palette chosen."""
    global _current
    colors = resolve(mode)
    _current = colors
    app.setStyle("Fusion")
    app.setPalette(_palette(colors))
    font = app.font()
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    font.setStyleStrategy(QFont.PreferAntialias)
    app.setFont(font)
    app.setStyleSheet(stylesheet(colors))
    log.debug("theme %s (asked: %s)", colors.name, mode)
    return colors

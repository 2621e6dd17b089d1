"""Hotkeys as text: "<ctrl>+<alt>+m", the format the settings file keeps and pynput reads.

Why our own check: the settings file must be validated on any machine, including one without a
display, where pynput cannot even be imported. The same names convert to and from the Qt key
sequences the Hotkeys page records ("Ctrl+Alt+M").
"""
from __future__ import annotations

MODIFIERS = ("ctrl", "alt", "shift", "cmd")
SPECIAL = ("left", "right", "up", "down", "space", "tab", "enter", "esc", "home", "end", "page_up", "page_down",
           "insert", "delete", "backspace", "pause", "print_screen", "scroll_lock",
           *(f"f{i}" for i in range(1, 21)))
_QT = {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "cmd": "Meta", "page_up": "PgUp", "page_down": "PgDown",
       "esc": "Esc", "enter": "Return", "delete": "Del", "insert": "Ins", "backspace": "Backspace",
       "print_screen": "Print", "scroll_lock": "ScrollLock"}
_FROM_QT = {v.lower(): k for k, v in _QT.items()} | {"meta": "cmd", "return": "enter", "escape": "esc",
                                                     "pgup": "page_up", "pgdown": "page_down"}


def hotkey_problem(text: str) -> str | None:
    """Why `text` is not a usable global hotkey (None: it is)."""
    parts = [p.strip() for p in str(text).split("+")]
    if not text or any(not p for p in parts):
        return f"{text!r} is not a hotkey; write it like <ctrl>+<alt>+m"
    mods, key = parts[:-1], parts[-1]
    for m in mods:
        if m.strip("<>") not in MODIFIERS or not (m.startswith("<") and m.endswith(">")):
            return f"{m!r} in {text!r} is not a modifier; use {', '.join(f'<{m}>' for m in MODIFIERS)}"
    if not mods:
        return f"{text!r} has no modifier: a plain key would fire while you type; add <ctrl> or <alt>"
    if len(set(mods)) != len(mods):
        return f"{text!r} repeats a modifier"
    if key.startswith("<") and key.endswith(">"):
        if key.strip("<>") not in SPECIAL:
            return f"{key!r} is not a key name pynput knows; use one character or {', '.join(SPECIAL[:8])}, ..."
    elif len(key) != 1 or not key.isprintable() or key.isupper():
        return f"{key!r} in {text!r} must be one lower-case character or a <named> key"
    return None


def check_hotkey(text: str | None) -> str | None:
    """For the settings file: None (off) is fine too."""
    return None if text is None else hotkey_problem(text)


def to_qt(text: str) -> str:
    """"<ctrl>+<alt>+m" -> "Ctrl+Alt+M" (QKeySequence's portable text)."""
    out = []
    for p in text.split("+"):
        name = p.strip("<>")
        out.append(_QT.get(name, name.upper() if len(name) == 1 else name.capitalize()))
    return "+".join(out)


def from_qt(text: str) -> str:
    """"Ctrl+Alt+M" -> "<ctrl>+<alt>+m"; the result may still fail hotkey_problem (e.g. no modifier)."""
    out = []
    for p in text.split("+"):
        low = p.strip().lower()
        name = _FROM_QT.get(low, low)
        out.append(name if len(name) == 1 else f"<{name}>")
    return "+".join(out)

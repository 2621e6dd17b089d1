"""Global hotkeys: next/previous avatar, a chosen avatar, mute, push-to-talk, while any window has focus.

Why pynput: it reads keys system-wide on X11 (the RECORD extension), Windows and macOS without
grabbing them from the game. Where that is impossible it says so in one line instead: Wayland
(no app may read keys typed into another app's window), no display, macOS without the
Accessibility permission. A combination another program already grabbed (X11), or two actions on
one combination, is one message each; the other hotkeys still work.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, fields
from typing import Callable, Mapping

from .config import HotkeySettings

log = logging.getLogger(__name__)

ACTIONS = ("next_avatar", "previous_avatar", "chosen", "mute", "push_to_talk")


def bindings(s: HotkeySettings) -> dict[str, str]:
    """action -> combination, for the actions that have one."""
    return {f.name: getattr(s, f.name) for f in fields(s) if f.name in ACTIONS and getattr(s, f.name)}


def support_problem(env: Mapping[str, str] = os.environ, platform: str = sys.platform) -> str | None:
    """Why global hotkeys cannot work on this desktop (None: they can)."""
    if platform.startswith("linux"):
        if env.get("XDG_SESSION_TYPE") == "wayland" or (env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY")):
            return ("global hotkeys are not possible on Wayland: it does not let an app read keys typed into other "
                    "windows. Log in to an X11 session (\"GNOME on Xorg\" / \"Plasma (X11)\") to use them, or bind "
                    "your desktop's own shortcuts to the tray menu")
        if not env.get("DISPLAY"):
            return "global hotkeys need a desktop session (no DISPLAY is set)"
    return None


def clashes(pairs: Mapping[str, str]) -> list[str]:
    """One message per combination bound to two actions."""
    seen: dict[str, str] = {}
    out = []
    for action, combo in pairs.items():
        if combo in seen:
            out.append(f"{combo} is set for both {seen[combo].replace('_', ' ')} and {action.replace('_', ' ')}; "
                       f"only {seen[combo].replace('_', ' ')} uses it")
        else:
            seen[combo] = action
    return out


def taken_elsewhere(combo: str, display: str | None = None) -> bool:
    """X11: has another program grabbed `combo` (a desktop shortcut)? Probed with a grab of our own."""
    from Xlib import X, XK, error
    from Xlib import display as xdisplay

    masks = {"ctrl": X.ControlMask, "alt": X.Mod1Mask, "shift": X.ShiftMask, "cmd": X.Mod4Mask}
    parts = combo.split("+")
    mask = 0
    for m in parts[:-1]:
        mask |= masks[m.strip("<>")]
    key = parts[-1].strip("<>")
    names = {"left": "Left", "right": "Right", "up": "Up", "down": "Down", "esc": "Escape", "enter": "Return",
             "page_up": "Prior", "page_down": "Next", "print_screen": "Print"}
    keysym = XK.string_to_keysym(names.get(key, key.upper() if key.startswith("f") and len(key) > 1 else key))
    d = xdisplay.Display(display)
    try:
        code = d.keysym_to_keycode(keysym)
        if not code:
            return False
        root = d.screen().root
        caught = error.CatchError(error.BadAccess)
        root.grab_key(code, mask, False, X.GrabModeAsync, X.GrabModeAsync, onerror=caught)
        d.sync()
        if caught.get_error() is not None:
            return True
        root.ungrab_key(code, mask)
        d.sync()
        return False
    finally:
        d.close()


@dataclass
class HotkeyEvent:
    action: str
    pressed: bool      # False: released (push-to-talk ends)


class HotkeyListener:
    """`with HotkeyListener(settings, on_event) as hk: hk.problems` — listens until closed.

    `on_event` runs on pynput's thread; a UI must hop to its own thread.
    """

    def __init__(self, settings: HotkeySettings, on_event: Callable[[HotkeyEvent], None]):
        self.on_event = on_event
        self.pairs = bindings(settings)
        self.problems: list[str] = []
        self._listener = None
        self._keys: dict[str, frozenset] = {}   # action -> its keys (pynput canonical keys)
        self._down: set = set()
        self._active: set[str] = set()

    def open(self) -> "HotkeyListener":
        problem = support_problem()
        if problem:
            self.problems.append(problem)
            return self
        try:
            from pynput import keyboard
        except ImportError as e:   # no X connection, no Accessibility permission (macOS), not installed
            self.problems.append(f"global hotkeys are not available here: {str(e).splitlines()[0]} "
                                 "(pip install pynput; macOS: allow AvatarCam in Privacy → Accessibility)")
            return self
        self.problems += clashes(self.pairs)
        used: set[str] = set()
        for action, combo in self.pairs.items():
            if combo in used:
                continue
            used.add(combo)
            if sys.platform.startswith("linux") and self._taken(combo):
                self.problems.append(f"{combo} ({action.replace('_', ' ')}) is already a shortcut of another "
                                     "program; choose another combination on the Hotkeys page")
                continue
            self._keys[action] = frozenset(keyboard.HotKey.parse(combo))
        self._listener = keyboard.Listener(on_press=self._press, on_release=self._release)
        self._listener.start()
        self._listener.wait()
        for p in self.problems:
            log.warning("hotkeys: %s", p)
        return self

    def _taken(self, combo: str) -> bool:
        try:
            return taken_elsewhere(combo)
        except Exception as e:  # the probe is advice only: a failure must not cost the hotkeys
            log.debug("could not probe %s: %s", combo, e)
            return False

    def _fire(self, action: str, pressed: bool) -> None:
        try:
            self.on_event(HotkeyEvent(action, pressed))
        except Exception:
            log.exception("hotkey action %s failed", action)

    def _press(self, key) -> None:
        """A combination fires once when its last key goes down (auto-repeat does not fire it again)."""
        self._down.add(self._listener.canonical(key))
        for action, keys in self._keys.items():
            if action not in self._active and keys <= self._down:
                self._active.add(action)
                self._fire(action, True)

    def _release(self, key) -> None:
        """Releasing any key of an active combination ends it (push-to-talk stops talking)."""
        key = self._listener.canonical(key)
        self._down.discard(key)
        for action in [a for a in self._active if key in self._keys[a]]:
            self._active.discard(action)
            self._fire(action, False)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener.join(5)
            self._listener = None

    def __enter__(self) -> "HotkeyListener":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

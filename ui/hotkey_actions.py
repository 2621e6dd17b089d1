"""What the global hotkeys do in the app: switch avatars, mute, push-to-talk.

Why a bridge: pynput calls from its own thread; a Qt signal hops to the UI thread, where the
controller (library, settings, the running session) may be touched. Problems (Wayland, a taken
combination) become one banner each, pointing at the Hotkeys page.
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


class HotkeyActions(QObject):
    """Listens while `settings.hotkeys.enabled`; `restart()` after the settings change."""

    fired = Signal(str, bool)   # action, pressed (from pynput's thread)
    changed = Signal()          # the listener (re)started or stopped: its problems may differ

    def __init__(self, controller):
        super().__init__(controller)
        self.controller = controller
        self.listener = None
        self.problems: list[str] = []
        self.fired.connect(self.act)
        controller.state_changed.connect(self._on_state)

    def restart(self) -> None:
        self.stop()
        s = self.controller.settings.hotkeys
        if not s.enabled:
            self.problems = []
            self.changed.emit()
            return
        from avatarcam.hotkeys import HotkeyListener
        self.listener = HotkeyListener(s, lambda e: self.fired.emit(e.action, e.pressed)).open()
        self.problems = list(self.listener.problems)
        for problem in self.problems:
            self.controller.message.emit("warning", problem[0].upper() + problem[1:] + ".", "hotkeys")
        self.changed.emit()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def act(self, action: str, pressed: bool) -> None:
        """Run one hotkey on the UI thread."""
        c = self.controller
        session = c.session if c.session is not None and c.session.running else None
        if action == "push_to_talk":
            if session is not None:
                session.mute(not pressed)
            return
        if not pressed:
            return
        if action == "mute":
            if session is None:
                c.message.emit("info", "Mute works while streaming.", None)
                return
            session.mute(not session.muted)
            c.message.emit("info", "Muted: the avatar hears silence." if session.muted else "Unmuted.", None)
        elif action in ("next_avatar", "previous_avatar"):
            names = [a.name for a in c.library.list()]
            current = c.current_avatar()
            if not names:
                return
            i = names.index(current.name) if current is not None and current.name in names else -1
            c.use_avatar(names[(i + (1 if action == "next_avatar" else -1)) % len(names)])
        elif action == "chosen":
            name = c.settings.hotkeys.chosen_avatar
            if name:
                c.use_avatar(name)
            else:
                c.message.emit("warning", "No avatar is chosen for this hotkey: pick one on the Hotkeys page.",
                               "hotkeys")

    def _on_state(self, state: str) -> None:
        """With push-to-talk bound, a stream starts muted: the mic opens while the keys are held."""
        s = self.controller.settings.hotkeys
        if state == "live" and s.enabled and s.push_to_talk and self.controller.session is not None:
            self.controller.session.mute(True)

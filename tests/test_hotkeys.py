"""Global hotkeys on a real X server (Xvfb): keys typed into another program's focused window reach
AvatarCam's actions; push-to-talk ends on release; a combination another program grabbed, two
actions on one combination, Wayland and no display are one message each. Keys are typed through
the XTEST extension, as xdotool does (this machine has no keyboard)."""
from __future__ import annotations

import threading

import pytest

from avatarcam.config import ConfigError, HotkeySettings, Settings, load_settings, save_settings, validate
from avatarcam.hotkey_text import from_qt, hotkey_problem, to_qt
from avatarcam.hotkeys import HotkeyListener, clashes, support_problem
from ui.xvfb import start_xvfb, stop_process


@pytest.fixture
def x_display(monkeypatch):
    display, proc = start_xvfb("640x480x24")
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    yield display
    stop_process(proc)


class Desk:
    """Another program on the X server: a focused window, and a keyboard that types into it."""

    def __init__(self, display: str):
        from Xlib import X, display as xdisplay
        self.d = xdisplay.Display(display)
        screen = self.d.screen()
        self.window = screen.root.create_window(0, 0, 200, 100, 0, screen.root_depth)
        self.window.map()
        self.d.sync()
        self.window.set_input_focus(X.RevertToParent, X.CurrentTime)
        self.d.sync()

    def _key(self, name: str, down: bool) -> None:
        from Xlib import X, XK
        from Xlib.ext import xtest
        xtest.fake_input(self.d, X.KeyPress if down else X.KeyRelease, self.d.keysym_to_keycode(XK.string_to_keysym(name)))
        self.d.sync()

    def press(self, *names: str) -> None:
        for n in names:
            self._key(n, True)

    def release(self, *names: str) -> None:
        for n in reversed(names):
            self._key(n, False)

    def tap(self, *names: str) -> None:
        self.press(*names)
        self.release(*names)

    def focused_is_ours(self) -> bool:
        return self.d.get_input_focus().focus == self.window

    def grab(self, keysym: str, mask: int) -> None:
        from Xlib import X, XK
        self.d.screen().root.grab_key(self.d.keysym_to_keycode(XK.string_to_keysym(keysym)), mask, False,
                                      X.GrabModeAsync, X.GrabModeAsync)
        self.d.sync()

    def close(self) -> None:
        """One more key: a stopped X11 listener leaves its record loop at the next event, before Xvfb goes."""
        self.tap("Shift_R")
        self.d.close()


class Heard:
    def __init__(self):
        self.events: list[tuple[str, bool]] = []
        self.cond = threading.Condition()

    def __call__(self, e) -> None:
        with self.cond:
            self.events.append((e.action, e.pressed))
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 20.0) -> list[tuple[str, bool]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.events) >= n, timeout)
            return list(self.events)


def ready(desk: Desk, heard: Heard) -> None:
    """Wait until the listener hears keys (its first events can be missed while X sets it up): tap the
    chosen-avatar combination until it arrives, then forget it."""
    for _ in range(100):
        desk.tap("Control_L", "Alt_L", "1")
        if heard.wait_for(1, 0.2):
            break
    heard.wait_for(2, 2.0)   # its release
    with heard.cond:
        assert heard.events[:1] == [("chosen", True)], "the listener never heard a key"
        heard.events.clear()


def test_hotkeys_fire_while_another_window_has_focus(x_display):
    desk, heard = Desk(x_display), Heard()
    try:
        with HotkeyListener(HotkeySettings(enabled=True), heard) as hk:
            assert hk.problems == []
            ready(desk, heard)
            assert desk.focused_is_ours()
            desk.tap("Control_L", "Alt_L", "m")
            desk.tap("Control_L", "Alt_L", "Right")
            events = heard.wait_for(4)
        assert [e for e in events if e[1]] == [("mute", True), ("next_avatar", True)]
    finally:
        desk.close()


def test_push_to_talk_ends_when_a_key_is_released(x_display):
    desk, heard = Desk(x_display), Heard()
    try:
        with HotkeyListener(HotkeySettings(push_to_talk="<ctrl>+<shift>+t"), heard):
            ready(desk, heard)
            desk.press("Control_L", "Shift_L", "t")
            assert heard.wait_for(1) == [("push_to_talk", True)]
            desk.release("t")
            assert heard.wait_for(2) == [("push_to_talk", True), ("push_to_talk", False)]
            desk.release("Control_L", "Shift_L")
    finally:
        desk.close()


def test_a_combination_another_program_grabbed_is_one_message_and_the_rest_still_work(x_display):
    from Xlib import X
    desk, heard = Desk(x_display), Heard()
    try:
        desk.grab("m", X.ControlMask | X.Mod1Mask)      # a desktop shortcut on Ctrl+Alt+M
        with HotkeyListener(HotkeySettings(), heard) as hk:
            assert len(hk.problems) == 1 and "<ctrl>+<alt>+m" in hk.problems[0] and "another program" in hk.problems[0]
            ready(desk, heard)
            desk.tap("Control_L", "Alt_L", "Left")
            assert heard.wait_for(1)[0] == ("previous_avatar", True)
    finally:
        desk.close()


def test_two_actions_on_one_combination_are_one_message():
    pairs = {"mute": "<ctrl>+<alt>+m", "next_avatar": "<ctrl>+<alt>+m", "chosen": "<ctrl>+<alt>+1"}
    said = clashes(pairs)
    assert len(said) == 1 and "mute" in said[0] and "next avatar" in said[0]


def test_wayland_and_no_display_say_why_hotkeys_cannot_work():
    assert "Wayland" in support_problem({"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"}, "linux")
    assert "DISPLAY" in support_problem({}, "linux")
    assert support_problem({"DISPLAY": ":0"}, "linux") is None
    assert support_problem({}, "win32") is None


def test_the_listener_reports_wayland_instead_of_listening(monkeypatch):
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    with HotkeyListener(HotkeySettings(), lambda e: None) as hk:
        assert len(hk.problems) == 1 and "Wayland" in hk.problems[0]


def test_the_settings_file_keeps_hotkeys_and_refuses_a_bad_one(tmp_path):
    s = Settings()
    s.hotkeys.enabled, s.hotkeys.mute, s.hotkeys.chosen_avatar = True, "<ctrl>+<shift>+<f5>", "Default"
    save_settings(s, tmp_path / "s.yaml")
    back = load_settings(tmp_path / "s.yaml")
    assert back.hotkeys.mute == "<ctrl>+<shift>+<f5>" and back.hotkeys.chosen_avatar == "Default"
    s.hotkeys.mute = "m"
    with pytest.raises(ConfigError, match="hotkeys.mute: 'm' has no modifier"):
        validate(s)


def test_hotkey_text_converts_to_and_from_qt():
    assert to_qt("<ctrl>+<alt>+<right>") == "Ctrl+Alt+Right"
    assert from_qt("Ctrl+Alt+M") == "<ctrl>+<alt>+m"
    assert hotkey_problem("<ctrl>+<alt>+<nope>") is not None

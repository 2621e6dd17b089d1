"""The Hotkeys page and the app's actions (real Qt offscreen, real settings file; the listener on a
real Xvfb): combinations recorded as key sequences are saved in the settings file's format, a
combination without a modifier is refused inline, and a hotkey switches avatars and mutes."""
from __future__ import annotations

from PySide6.QtGui import QKeySequence

from avatarcam.config import load_settings
from tests.fixtures_card import random_card  # noqa: F401
from tests.fixtures_qt import quiet_settings, speech_wav, ui_app, ui_home  # noqa: F401
from tests.test_hotkeys import x_display  # noqa: F401


def test_recorded_keys_are_saved_in_the_settings_file(ui_app, ui_home, monkeypatch):
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")     # no listener here: this test is about the file
    page = ui_app().window.pages["hotkeys"]
    page.edits["mute"].setKeySequence(QKeySequence("Ctrl+Shift+F9"))
    page.enabled.setChecked(True)
    s = load_settings(ui_home.settings_path).hotkeys
    assert s.enabled and s.mute == "<ctrl>+<shift>+<f9>"
    assert "Wayland" in page.msg.text()


def test_a_key_without_a_modifier_is_refused_inline(ui_app, ui_home):
    page = ui_app().window.pages["hotkeys"]
    page.edits["next_avatar"].setKeySequence(QKeySequence("N"))
    page.save()
    assert "no modifier" in page.msg.text()
    assert load_settings(ui_home.settings_path).hotkeys.next_avatar == "<ctrl>+<alt>+<right>"


def test_next_avatar_and_chosen_avatar_switch_the_current_one(ui_app, ui_home):
    app = ui_app()
    lib = app.controller.library
    lib.new_cartoon(seed=1, name="Alpha")
    lib.new_cartoon(seed=2, name="Beta")
    app.controller.use_avatar("Alpha")
    app.controller.hotkeys.act("next_avatar", True)
    assert app.controller.settings.avatar.current == "Beta"
    app.controller.settings.hotkeys.chosen_avatar = "Alpha"
    app.controller.hotkeys.act("chosen", True)
    assert load_settings(ui_home.settings_path).avatar.current == "Alpha"


def test_mute_and_push_to_talk_reach_a_running_stream(ui_app, qtbot, random_card, speech_wav):
    app = ui_app(settings=quiet_settings(str(random_card)), audio_file=speech_wav)
    app.controller.start()
    qtbot.waitUntil(lambda: app.controller.live, timeout=60000)
    try:
        session = app.controller.session
        app.controller.hotkeys.act("mute", True)
        assert session.muted
        app.controller.hotkeys.act("mute", True)
        assert not session.muted
        app.controller.hotkeys.act("push_to_talk", False)
        assert session.muted
        app.controller.hotkeys.act("push_to_talk", True)
        assert not session.muted
    finally:
        app.controller.stop()
        qtbot.waitUntil(lambda: not app.controller.busy, timeout=30000)


def test_a_hotkey_typed_into_another_window_switches_the_apps_avatar(ui_app, ui_home, qtbot, x_display):
    """The whole path: the app's listener on a real X server, keys typed into another program's window."""
    from tests.test_hotkeys import Desk, Heard, ready
    s = quiet_settings()
    s.hotkeys.enabled = True
    app = ui_app(settings=s)
    lib = app.controller.library
    lib.new_cartoon(seed=1, name="Alpha")
    lib.new_cartoon(seed=2, name="Beta")
    app.controller.use_avatar("Alpha")
    assert app.controller.hotkeys.problems == []
    desk = Desk(x_display)
    try:
        heard = Heard()
        app.controller.hotkeys.listener.on_event = lambda e: (heard(e), app.controller.hotkeys.fired.emit(e.action, e.pressed))
        ready(desk, heard)                 # Ctrl+Alt+1 with no chosen avatar: a warning, nothing switches
        app.controller.use_avatar("Alpha")
        desk.tap("Control_L", "Alt_L", "Right")
        qtbot.waitUntil(lambda: app.controller.settings.avatar.current == "Beta", timeout=20000)
    finally:
        app.controller.hotkeys.stop()
        desk.close()

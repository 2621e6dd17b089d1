"""Start/Stop in the desktop app drives a REAL Session: a small random model card, an audio file as the
voice, preview frames drawn in the window. Offscreen Qt; no camera device exists here, so the camera is
off except in the test that checks the missing-camera warning."""
from __future__ import annotations

from tests.fixtures_card import random_card  # noqa: F401
from tests.fixtures_qt import quiet_settings, speech_wav, ui_app, ui_home, write_wav  # noqa: F401


def test_start_and_stop_drive_a_real_session_and_fill_the_preview(ui_app, qtbot, random_card, speech_wav):
    app = ui_app(settings=quiet_settings(str(random_card)), audio_file=speech_wav)
    w, c = app.window, app.controller
    live = w.pages["live"]
    w.start_btn.click()
    assert c.state == "starting" and not w.start_btn.isEnabled() and w.busy_bar.isVisibleTo(w)
    qtbot.waitUntil(lambda: c.state == "live", timeout=60000)
    assert w.start_btn.text() == "Stop streaming"
    qtbot.waitUntil(lambda: live.preview.frames_drawn > 5, timeout=20000)
    assert live.preview.image.width() == 64                      # the card's frame size, drawn unscaled in data
    qtbot.waitUntil(lambda: c.last_stats.frames_shown > 0 and c.last_stats.step_ms_p50 > 0, timeout=20000)
    assert live.tiles["step"].value.text().endswith("ms")
    w.start_btn.click()
    qtbot.waitUntil(lambda: c.state == "idle", timeout=20000)
    assert not c.session.running and c.session.error is None
    assert w.start_btn.text() == "Start streaming"


def test_the_end_of_the_audio_file_returns_to_idle(ui_app, qtbot, random_card, tmp_path):
    app = ui_app(settings=quiet_settings(str(random_card)), audio_file=write_wav(tmp_path / "short.wav", 0.6))
    app.controller.start()
    qtbot.waitUntil(lambda: app.controller.state == "live", timeout=60000)
    qtbot.waitUntil(lambda: app.controller.state == "idle", timeout=20000)
    assert app.controller.session.stats().frames_generated == 16    # 0.6 s at 25 fps = 15 frames, padded to whole blocks of 2


def test_a_missing_model_shows_a_banner_with_the_fix_not_a_crash(ui_app, qtbot, tmp_path, speech_wav):
    app = ui_app(settings=quiet_settings(str(tmp_path / "no-such-model")), audio_file=speech_wav)
    app.window.start_btn.click()
    qtbot.waitUntil(lambda: app.controller.state == "error", timeout=30000)
    banner = app.window.banner
    assert banner.isVisibleTo(app.window) and banner.level == "error"
    assert "no-such-model" in banner.text.text() and "not found" in banner.text.text()
    assert banner.fix.text() == "Open Avatars"
    banner.fix.click()
    assert app.window.current_page() == "avatars"
    assert app.window.start_btn.isEnabled()                         # the user can fix it and try again


def test_switching_avatar_while_live_reaches_the_running_session(ui_app, qtbot, random_card, speech_wav):
    app = ui_app(settings=quiet_settings(str(random_card)), audio_file=speech_wav)
    lib = app.controller.library
    lib.new_cartoon(seed=1, name="First")
    second = lib.new_cartoon(seed=2, name="Second")
    app.controller.use_avatar("First")
    app.controller.start()
    qtbot.waitUntil(lambda: app.controller.state == "live", timeout=60000)
    app.controller.use_avatar("Second")
    session = app.controller.session
    assert (session.options.avatar_image == second.load_image()).all()
    assert app.controller.settings.avatar.current == "Second"
    app.controller.stop()
    qtbot.waitUntil(lambda: app.controller.state == "idle", timeout=20000)


def test_no_virtual_camera_is_a_warning_while_the_stream_goes_on(ui_app, qtbot, random_card, speech_wav):
    """No v4l2loopback device can exist on this machine: the real pyvirtualcam fails to open one."""
    s = quiet_settings(str(random_card))
    s.camera.enabled = True
    app = ui_app(settings=s, audio_file=speech_wav)
    app.controller.start()
    qtbot.waitUntil(lambda: app.controller.state == "live", timeout=60000)
    banner = app.window.banner
    qtbot.waitUntil(lambda: banner.level == "warning", timeout=10000)
    assert "virtual camera" in banner.text.text().lower()
    assert banner.fix.text() == "Open Devices"
    app.controller.stop()
    qtbot.waitUntil(lambda: app.controller.state == "idle", timeout=20000)

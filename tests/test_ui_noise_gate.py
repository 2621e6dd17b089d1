"""The noise gate on the Devices page: switched on, dragged along the real level meter (real Qt,
offscreen), saved to the real settings file, and moved in a running stream."""
from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from avatarcam.config import load_settings
from tests.fixtures_card import random_card  # noqa: F401
from tests.fixtures_qt import quiet_settings, speech_wav, ui_app, ui_home  # noqa: F401


def _card(app):
    return app.window.pages["devices"].mic_card


def test_switching_the_gate_on_puts_the_marker_on_the_meter_and_saves_it(ui_app, ui_home):
    card = _card(ui_app())
    assert card.level.threshold_db is None
    card.gate.setChecked(True)
    assert card.level.threshold_db == -45.0 and "gate -45 dBFS" in card.gate_text.text()
    assert load_settings(ui_home.settings_path).audio.noise_gate_db == -45.0
    card.gate.setChecked(False)
    assert card.level.threshold_db is None and load_settings(ui_home.settings_path).audio.noise_gate_db is None


def test_dragging_the_marker_sets_the_threshold(ui_app, ui_home, qtbot):
    app = ui_app()
    card = _card(app)
    card.gate.setChecked(True)
    bar = card.level
    bar.resize(600, bar.height())
    y = bar.height() // 2
    qtbot.mousePress(bar, Qt.LeftButton, pos=QPoint(int(bar.x_of(-45.0)), y))
    qtbot.mouseMove(bar, QPoint(int(bar.x_of(-30.0)), y))
    qtbot.mouseRelease(bar, Qt.LeftButton, pos=QPoint(int(bar.x_of(-30.0)), y))
    assert abs(bar.threshold_db - -30.0) <= 0.2
    assert abs(load_settings(ui_home.settings_path).audio.noise_gate_db - -30.0) <= 0.2


def test_a_saved_gate_shows_when_the_page_opens(ui_app):
    s = quiet_settings()
    s.audio.noise_gate_db = -38.0
    card = _card(ui_app(settings=s))
    assert card.gate.isChecked() and card.level.threshold_db == -38.0


def test_moving_the_gate_reaches_a_running_stream(ui_app, qtbot, random_card, speech_wav):
    s = quiet_settings(str(random_card))
    app = ui_app(settings=s, audio_file=speech_wav)
    app.controller.start()
    qtbot.waitUntil(lambda: app.controller.live, timeout=60000)
    try:
        app.controller.set_noise_gate(-20.0)
        assert app.controller.session._run.capture.gate.threshold_db == -20.0
    finally:
        app.controller.stop()
        qtbot.waitUntil(lambda: not app.controller.busy, timeout=30000)

"""The tray icon under a real X server (Xvfb) with a real XEmbed tray host (trayer): menu, avatar
switch and Start/Stop of a real session from the tray. Qt picks its platform once per process, so the
app runs in a subprocess with QT_QPA_PLATFORM=xcb; the rest of the UI tests stay offscreen."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from tests.fixtures_card import random_card  # noqa: F401
from tests.fixtures_qt import speech_wav  # noqa: F401
from ui.xvfb import start_xvfb, stop_process

SCRIPT = textwrap.dedent('''
    import json, sys, time
    from PySide6.QtWidgets import QApplication, QSystemTrayIcon
    from avatarcam.avatars import AvatarLibrary
    from avatarcam.config import Settings
    from ui.app import build_app

    card, wav, settings_path = sys.argv[1:4]
    qapp = QApplication([])
    deadline = time.monotonic() + 10
    while not QSystemTrayIcon.isSystemTrayAvailable() and time.monotonic() < deadline:
        time.sleep(0.1)
    lib = AvatarLibrary()
    lib.new_cartoon(seed=1, name="Ada")
    lib.new_cartoon(seed=2, name="Bo")
    s = Settings(); s.camera.enabled = False; s.engine.model = card; s.engine.device = "cpu"
    app = build_app(settings_path, audio_file=wav, settings=s, show=False)

    def pump(cond, timeout):
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            qapp.processEvents(); time.sleep(0.02)
        return cond()

    out = {"available": QSystemTrayIcon.isSystemTrayAvailable(), "has_tray": app.tray is not None}
    if app.tray is not None:
        t = app.tray
        pump(lambda: t.geometry().width() > 0, 5)
        out["geometry"] = [t.geometry().width(), t.geometry().height()]
        out["menu"] = [a.text() for a in t.menu.actions() if a.text()]
        t.avatar_menu.aboutToShow.emit()
        out["avatars"] = [a.text() for a in t.avatar_menu.actions()]
        out["window_visible_at_start"] = app.window.isVisible()
        next(a for a in t.avatar_menu.actions() if a.text() == "Bo").trigger()
        out["current"] = app.controller.settings.avatar.current
        t.toggle_action.trigger()
        out["went_live"] = pump(lambda: app.controller.state == "live", 60)
        out["tooltip_live"] = t.toolTip()
        out["toggle_text_live"] = t.toggle_action.text()
        t.toggle_action.trigger()
        out["stopped"] = pump(lambda: app.controller.state == "idle", 20)
        out["status_idle"] = t.status_action.text()
        t.open_action.trigger(); qapp.processEvents()
        out["window_opened"] = app.window.isVisible()
        app.window.close(); qapp.processEvents()
        out["close_hides_to_tray"] = not app.window.isVisible() and not app.window.quitting
        t.quit_action.trigger()
    print("RESULT " + json.dumps(out))
''')


@pytest.fixture
def x_with_tray():
    """A private Xvfb display with trayer owning the system tray selection."""
    for exe, pkg in (("Xvfb", "xvfb"), ("trayer", "trayer")):
        if shutil.which(exe) is None:
            pytest.skip(f"`{exe}` not installed (apt-get install {pkg})")
    display, xvfb = start_xvfb()
    tray = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--SetDockType", "true"],
                            env=dict(os.environ, DISPLAY=display), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield display
    finally:
        stop_process(tray)
        stop_process(xvfb)


def test_tray_menu_switches_avatars_and_starts_a_real_session(x_with_tray, tmp_path, random_card, speech_wav):
    env = dict(os.environ, DISPLAY=x_with_tray, QT_QPA_PLATFORM="xcb", AVATARCAM_HOME=str(tmp_path / "home"))
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(random_card), str(speech_wav),
                          str(tmp_path / "settings.yaml")], env=env, capture_output=True, text=True, timeout=180,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, run.stdout[-2000:] + run.stderr[-3000:]
    out = json.loads(line[len("RESULT "):])
    assert out["available"] and out["has_tray"]
    assert out["geometry"][0] > 0
    assert out["menu"] == ["Start streaming", "Avatar", "Status: Idle", "Open window", "Quit AvatarCam"]
    assert out["avatars"] == ["Ada", "Bo"] and out["current"] == "Bo"
    assert not out["window_visible_at_start"]
    assert out["went_live"] and out["tooltip_live"].startswith("AvatarCam — live")
    assert out["toggle_text_live"] == "Stop streaming"
    assert out["stopped"] and out["status_idle"] == "Status: Idle"
    assert out["window_opened"] and out["close_hides_to_tray"]

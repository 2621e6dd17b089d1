"""Take the documentation screenshots: every page (and the avatar creator) in light and dark, an error
banner, the tray menu.

    python -m ui.screenshots --out docs/screenshots

Without a display it starts a private Xvfb and the `trayer` tray host (apt-get install xvfb trayer),
so the tray menu can be captured too; with neither it falls back to offscreen (no tray picture).
Everything runs against a throw-away avatar library and settings file, never the user's own.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ui.xvfb import start_xvfb, stop_process

log = logging.getLogger(__name__)

SEEDS = (17, 3, 42, 99, 1234)
PAGES = ("live", "avatars", "anchors", "devices", "obs", "hotkeys")
BELOW = {"avatars": "creator", "obs": "obs-keyed-card"}   # pages with a second picture, scrolled down
WINDOW_SIZE = (1120, 760)
_CHILD = "AVATARCAM_SCREENSHOT_CHILD"


def _start_pulse(folder: Path, env: dict) -> subprocess.Popen | None:
    """A private sound server with a test-tone microphone, so the Devices page shows a live meter."""
    if not shutil.which("pulseaudio"):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    sock = folder / "native"
    penv = dict(env, XDG_RUNTIME_DIR=str(folder), HOME=str(folder))
    penv.pop("PULSE_SERVER", None)
    proc = subprocess.Popen(["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n",
                             f"--load=module-native-protocol-unix auth-anonymous=1 socket={sock}",
                             "--load=module-null-sink sink_name=speakers",
                             "--load=module-sine-source source_name=studio_mic rate=16000 frequency=220",
                             ], env=penv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env["PULSE_SERVER"] = f"unix:{sock}"
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.05)
    subprocess.run(["pactl", "set-default-source", "studio_mic"], env=env, capture_output=True, timeout=10)
    return proc


def launch(out: Path, themes: list[str]) -> int:
    """Run the capture in a child process under Xvfb + trayer (or offscreen)."""
    env = dict(os.environ, **{_CHILD: "1"})
    xvfb = tray = pulse = None
    scratch = Path(tempfile.mkdtemp(prefix="avatarcam-shots-rt-"))
    try:
        pulse = _start_pulse(scratch / "pulse", env)
        if shutil.which("Xvfb"):
            display, xvfb = start_xvfb()
            env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
            if shutil.which("xsetroot"):  # a desktop-like backdrop behind the tray menu
                subprocess.run(["xsetroot", "-solid", "#5B6478"], env=env, timeout=10)
            if shutil.which("trayer"):
                tray = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--SetDockType", "true",
                                         "--height", "28", "--widthtype", "request"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.7)
            else:
                log.warning("trayer not installed: no tray menu picture (apt-get install trayer)")
        else:
            log.warning("Xvfb not installed: offscreen, no tray menu picture (apt-get install xvfb trayer)")
            env["QT_QPA_PLATFORM"] = "offscreen"
        cmd = [sys.executable, "-m", "ui.screenshots", "--out", str(out), "--theme", *themes]
        return subprocess.run(cmd, env=env).returncode
    finally:
        stop_process(tray)
        stop_process(xvfb)
        stop_process(pulse)
        shutil.rmtree(scratch, ignore_errors=True)


def _creator_look():
    """A look built in the creator for the Avatars page picture: a green screen and a few choices."""
    from engine.toon import random_identity
    from engine.toon.creator import set_control, set_key
    look = random_identity(42)
    for name, value in (("hair_style", "curly"), ("glasses", "round"), ("shirt", (77, 124, 172))):
        look = set_control(look, name, value)
    return set_key(look, "green")


def capture(out: Path, themes: list[str]) -> list[Path]:
    """Inside the display: build the app on a scratch library and grab every view."""
    from PySide6.QtCore import QPoint, QRect
    from PySide6.QtWidgets import QApplication

    scratch = Path(tempfile.mkdtemp(prefix="avatarcam-shots-"))
    os.environ["AVATARCAM_HOME"] = str(scratch / "home")
    from avatarcam.avatars import AvatarLibrary
    from avatarcam.config import Settings

    from .app import build_app
    from . import theme as theme_mod

    lib = AvatarLibrary()
    for seed in SEEDS:
        lib.new_cartoon(seed=seed)
    lib.rename("Toon 17", "Sam")
    lib.rename("Toon 3", "Robin")
    lib.set_prompt("Sam", "friendly, calm, a warm smile")
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def settle(ms: int = 150) -> None:
        end = time.monotonic() + ms / 1000
        while time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.01)

    def save(widget_or_pixmap, name: str) -> None:
        pix = widget_or_pixmap if hasattr(widget_or_pixmap, "save") and not hasattr(widget_or_pixmap, "grab") \
            else widget_or_pixmap.grab()
        path = out / name
        if not pix.save(str(path)):
            raise RuntimeError(f"could not write {path}")
        saved.append(path)
        print(path)

    for mode in themes:
        settings = Settings()
        settings.ui.theme = mode
        settings.avatar.current = "Sam"
        settings.obs.enabled = True
        settings.obs.password = "secret-password"
        settings.output.record = str(Path.home() / "Videos" / "avatar.mp4")
        settings.audio.noise_gate_db = -42.0
        settings.hotkeys.enabled, settings.hotkeys.push_to_talk = True, "<ctrl>+<shift>+t"
        settings.hotkeys.chosen_avatar = "Robin"
        settings.obs.keyed, settings.obs.keyed_scene = True, "Game"
        app = build_app(scratch / f"settings-{mode}.yaml", settings=settings, show=False)
        w = app.window
        w.resize(*WINDOW_SIZE)
        w.move(24, 24)
        w.show()
        settle(300)
        w.pages["avatars"].creator.set_look(_creator_look())
        for key in PAGES:
            w.show_page(key)
            settle()
            if key == "devices":   # the meter hears the test tone, with the gate's marker on it
                mic = w.pages["devices"].mic_card
                mic.listen_btn.setChecked(True)
                settle(1500)
            save(w, f"{key}-{mode}.png")
            if key == "devices":
                mic.listen_btn.setChecked(False)
            if key in BELOW:   # the creator sits below the gallery, the keyed avatar below OBS's sync
                page = w.pages[key]
                page.verticalScrollBar().setValue(page.verticalScrollBar().maximum())
                settle()
                save(w, f"{BELOW[key]}-{mode}.png")
                page.verticalScrollBar().setValue(0)
        if app.tray is not None:
            w.hide()  # the tray menu over the desktop, as users see it
            settle(300)
            geo = app.tray.geometry()
            app.tray.menu.popup(QPoint(max(0, geo.right() - 260), geo.bottom() + 4))
            settle(300)
            menu_geo = app.tray.menu.geometry()
            app.tray.avatar_menu.popup(QPoint(menu_geo.left() - 200, menu_geo.top() + 40))
            settle(300)
            screen = QApplication.primaryScreen()
            full = screen.grabWindow(0)
            if shutil.which("import"):  # ImageMagick reads the root with its background; Qt's grab is black there
                raw = scratch / "root.png"
                subprocess.run(["import", "-window", "root", str(raw)], timeout=30, check=False)
                from PySide6.QtGui import QPixmap
                if raw.exists():
                    full = QPixmap(str(raw))
            region = QRect(full.width() - 560, 0, 560, 300)
            save(full.copy(region), f"tray-menu-{mode}.png")
            app.tray.avatar_menu.hide()
            app.tray.menu.hide()
            w.show()
        # a real error path: the default model is not installed in a bare checkout -> banner with the fix
        app.controller.settings.engine.model = "no-such-model"
        w.show_page("live")
        app.controller.start()
        deadline = time.monotonic() + 60
        while app.controller.state == "starting" and time.monotonic() < deadline:
            settle(50)
        settle()
        save(w, f"error-banner-{mode}.png")
        app.controller.settings.engine.model = "toon"
        w.banner.clear()
        w.quitting = True
        w.close()
        settle()
        app.controller.shutdown(5)
        w.deleteLater()
        settle()
        theme_mod.apply_theme(QApplication.instance(), "light")
    shutil.rmtree(scratch, ignore_errors=True)
    return saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    ap.add_argument("--theme", nargs="+", default=["light", "dark"], choices=["light", "dark"])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if os.environ.get(_CHILD) != "1" and not os.environ.get("DISPLAY"):
        return launch(args.out, args.theme)
    capture(args.out, args.theme)
    return 0


if __name__ == "__main__":
    sys.exit(main())

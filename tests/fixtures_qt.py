"""Qt test setup for the desktop app: offscreen platform, a private avatar library and settings file.

QT_QPA_PLATFORM must be set before pytest-qt creates the QApplication, so it is set when this module
is imported (test modules import it before any qapp fixture runs). The tray needs a real X server
with a tray host, so tray tests run the app in a subprocess under Xvfb + trayer (tests/test_ui_tray.py).

Import by name: ``from tests.fixtures_qt import ui_app, ui_home, speech_wav  # noqa: F401``.
"""
from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"
SR = 16000


@dataclass
class UiHome:
    home: Path              # AVATARCAM_HOME (the avatar library lives under it)
    settings_path: Path


@pytest.fixture
def ui_home(tmp_path, monkeypatch) -> UiHome:
    """A throw-away data dir and settings path: tests never touch the user's library or settings."""
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("AVATARCAM_HOME", str(home))
    return UiHome(home, tmp_path / "settings.yaml")


def quiet_settings(model: str | None = None):
    """Settings with no camera and no OBS: what the stream tests need on a machine without devices."""
    from avatarcam.config import Settings
    s = Settings()
    s.camera.enabled = False
    s.obs.enabled = False
    if model is not None:
        s.engine.model = model
    s.engine.device = "cpu"
    return s


@pytest.fixture
def ui_app(qtbot, ui_home):
    """Factory: ``ui_app(settings=None, audio_file=None)`` -> ui.app.App; shut down after the test."""
    from ui.app import build_app
    made = []

    def make(settings=None, audio_file=None, show: bool = True):
        app = build_app(ui_home.settings_path, audio_file=audio_file, show=show, settings=settings)
        qtbot.addWidget(app.window)
        made.append(app)
        return app

    yield make
    for app in made:
        app.controller.shutdown(10)
        app.window.quitting = True
        app.window.close()


def write_wav(path: Path, seconds: float, freq: float = 220.0) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture
def speech_wav(tmp_path) -> Path:
    """Three seconds of a voiced tone (a stand-in for speech that the audio features react to)."""
    return write_wav(tmp_path / "voice.wav", 3.0)


def portrait_png(path: Path, size: int = 200) -> Path:
    from PIL import Image
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = (90, 140, 200)
    img[size // 4: 3 * size // 4, size // 3: 2 * size // 3] = (235, 190, 160)
    Image.fromarray(img).save(path)
    return path

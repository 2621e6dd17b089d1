"""engine.device / dtype / backend, camera.fps and audio.delay_s reach the stream (they used to be
validated and then ignored). CUDA is not on this machine: a CUDA request is checked for its error
only; the camera stops at pyvirtualcam's backend boundary (tests/fixtures_vcam.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from avatarcam.config import Settings
from avatarcam.session import Session
from avatarcam.stream_options import SessionOptions
from tests.fixtures_card import random_card  # noqa: F401
from tests.fixtures_pulse import mic_feeder, pulse  # noqa: F401
from tests.fixtures_vcam import recording_camera  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
VOICE = ROOT / "avatarcam" / "data" / "demo_voice.wav"
SR = 16000


def avatarcam(*args, home: Path, env_extra: dict | None = None):
    env = dict(os.environ, AVATARCAM_HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "avatarcam.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)


def face() -> np.ndarray:
    img = np.zeros((96, 96, 3), np.uint8)
    img[24:72, 24:72] = (240, 200, 160)
    return img


def wav(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((0.2 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes())
    return path


def quiet_settings() -> Settings:
    s = Settings()
    s.camera.enabled = False
    return s


@pytest.mark.parametrize("setting,needle", [
    ("engine.device=cuda", "engine.device=cuda but"),
    ("engine.backend=tensorrt", "engine.backend=tensorrt needs an NVIDIA GPU"),
    ("engine.dtype=float16", "engine.dtype=float16 runs only on a GPU"),
])
def test_impossible_engine_choice_is_one_line(tmp_path, random_card, setting, needle):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: these choices are possible here")
    res = avatarcam("run", "--audio", str(VOICE), "--no-camera", "--model", str(random_card), "--set", setting,
                    home=tmp_path)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr


def test_dtype_bfloat16_runs_the_model_in_bfloat16(tmp_path, random_card):
    s = quiet_settings()
    s.engine.dtype = "bfloat16"
    session = Session(s, SessionOptions(model=str(random_card), avatar_image=face(), audio_file=wav(tmp_path / "a.wav", 1.0)))
    session.start()
    assert next(session.stream.model.parameters()).dtype == torch.bfloat16
    assert session.wait(60) and session.error is None
    stats = session.stats()
    assert stats.frames_generated == 26 and stats.engine.startswith("cpu bfloat16 eager")


def test_backend_compile_sends_the_steady_calls_through_the_compiler(tmp_path, random_card):
    """torch.compile is wired through engine.backends; the compiler itself is switched off here
    (TORCH_COMPILE_DISABLE=1) because compiling takes ~77 s on this 2-core machine (measured)."""
    res = avatarcam("--debug", "run", "--audio", str(VOICE), "--duration", "2", "--no-camera", "--model",
                    str(random_card), "--set", "engine.backend=compile", home=tmp_path,
                    env_extra={"TORCH_COMPILE_DISABLE": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "on cpu float32 compile" in res.stdout and "failed" not in res.stdout
    assert "DiT backend: compile (requested compile)" in res.stderr


def test_camera_runs_at_camera_fps(tmp_path, random_card, recording_camera):
    s = Settings()
    s.camera.enabled, s.camera.fps, s.camera.width, s.camera.height = True, 50, 128, 128
    session = Session(s, SessionOptions(model=str(random_card), avatar_image=face(),
                                        audio_file=wav(tmp_path / "a.wav", 3.0), realtime=True))
    session.start()
    assert session.wait(60) and session.error is None
    cam = recording_camera.instances[-1]
    assert cam.fps == 50                                    # the camera apps see runs at camera.fps
    runs, n = [], 1                                         # consecutive identical frames on the camera
    for a, b in zip(cam.frames, cam.frames[1:]):
        if np.array_equal(a, b):
            n += 1
        else:
            runs.append(n)
            n = 1
    assert len(runs) > 20 and np.median(runs) == 2          # 25 fps frames, each shown twice (load-proof:
    # the pacer owes half a frame per tick however late it wakes)


def test_fixed_audio_delay_is_used_when_auto_is_off(tmp_path, random_card, mic_feeder):
    s = quiet_settings()
    s.audio.mic = "pulse"
    s.audio.delayed_output = "pulse"
    s.audio.delay_auto, s.audio.delay_s = False, 0.7
    session = Session(s, SessionOptions(model=str(random_card), avatar_image=face(), duration_s=3.0))
    session.start()
    try:
        assert session.delayed_mic is not None, "the delayed output did not open"
        time.sleep(1.5)
        assert session.delayed_mic.delay_s == pytest.approx(0.7)      # not the measured latency
    finally:
        session.stop()
    assert session.wait(30)

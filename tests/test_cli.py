"""The `avatarcam` command as a user runs it: real subprocesses, exit codes, one-line errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_card import random_card  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
VOICE = ROOT / "avatarcam" / "data" / "demo_voice.wav"


def avatarcam(*args, home=None, timeout=180):
    env = dict(os.environ)
    if home is not None:
        env["AVATARCAM_HOME"] = str(home)
        env["XDG_CONFIG_HOME"] = str(Path(home) / "config")
    return subprocess.run([sys.executable, "-m", "avatarcam.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def test_version_and_help():
    out = avatarcam("--version")
    assert out.returncode == 0 and out.stdout.startswith("avatarcam ")
    help_ = avatarcam("run", "--help")
    assert help_.returncode == 0 and "--audio" in help_.stdout and "--no-style-anchor" in help_.stdout


def test_run_audio_file_to_mp4(tmp_path, random_card):
    out = tmp_path / "demo.mp4"
    res = avatarcam("run", "--audio", str(VOICE), "--out", str(out), "--no-camera", "--duration", "2",
                    "--model", str(random_card), home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert out.exists() and out.stat().st_size > 1000
    assert "wrote" in res.stdout


@pytest.mark.parametrize("args,expected", [
    (["run", "--audio", "nope.wav"], "no such file"),
    (["run", "--audio", str(VOICE), "--out", "x.avi"], "must be an .mp4"),
    (["run", "--audio", str(VOICE), "--duration", "-1"], "--duration must be positive"),
    (["run", "--set", "camera.fps=500", "--audio", str(VOICE)], "camera.fps"),
])
def test_bad_input_is_one_line_without_traceback(tmp_path, args, expected):
    res = avatarcam(*args, home=tmp_path)
    assert res.returncode == 2
    assert expected in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("error:")

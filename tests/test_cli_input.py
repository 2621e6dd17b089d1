"""What a user types and the files they bring, through the real `avatarcam` command: the current avatar,
empty and binary files, the settings command, an existing --out, a big photo, no display."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.fixtures_card import random_card  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
VOICE = ROOT / "avatarcam" / "data" / "demo_voice.wav"


def avatarcam(*args, home: Path, env_extra: dict | None = None, drop: tuple = ()):
    env = dict(os.environ, AVATARCAM_HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), **(env_extra or {}))
    for key in drop:
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "avatarcam.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)


def settings_file(home: Path) -> Path:
    return home / "config" / "avatarcam" / "settings.yaml"


def one_error_line(res, *needles: str) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def first_frame(path: Path) -> np.ndarray:
    import av
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)


# ---------------------------------------------------------------------------------- avatars (5)

def test_run_streams_the_avatar_set_with_avatars_use(tmp_path, random_card):
    for seed, name in ((1, "Ann"), (2, "Bob")):
        assert avatarcam("avatars", "new", "--seed", str(seed), "--name", name, home=tmp_path).returncode == 0
    res = avatarcam("avatars", "use", "Bob", home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load(settings_file(tmp_path).read_text())["avatar"]["current"] == "Bob"
    assert "* Bob" in avatarcam("avatars", "list", home=tmp_path).stdout
    frames = {}
    for label, extra in (("current", ()), ("Ann", ("--avatar", "Ann")), ("Bob", ("--avatar", "Bob"))):
        out = tmp_path / f"{label}.mp4"
        res = avatarcam("run", "--audio", str(VOICE), "--duration", "0.5", "--no-camera", "--model",
                        str(random_card), "--out", str(out), *extra, home=tmp_path)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(f"avatar {'Bob' if label == 'current' else label},")
        frames[label] = first_frame(out)
    assert np.array_equal(frames["current"], frames["Bob"])      # the same picture made the same video
    assert not np.array_equal(frames["current"], frames["Ann"])
    assert avatarcam("avatars", "rename", "Bob", "Rob", home=tmp_path).returncode == 0
    assert yaml.safe_load(settings_file(tmp_path).read_text())["avatar"]["current"] == "Rob"


def test_a_current_avatar_missing_from_the_library_is_one_line(tmp_path, random_card):
    avatarcam("avatars", "new", "--seed", "1", "--name", "Ann", home=tmp_path)
    assert avatarcam("settings", "set", "avatar.current=Zed", home=tmp_path).returncode == 0
    res = avatarcam("run", "--audio", str(VOICE), "--no-camera", "--model", str(random_card), home=tmp_path)
    one_error_line(res, "avatar.current", "'Zed'", "avatars use")


# ------------------------------------------------------------------------------- bad files (7, 8)

def test_zero_sample_wav_is_an_error_and_writes_no_mp4(tmp_path, random_card):
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    out = tmp_path / "out.mp4"
    res = avatarcam("run", "--audio", str(empty), "--out", str(out), "--no-camera", "--model", str(random_card),
                    home=tmp_path)
    one_error_line(res, str(empty), "no audio samples")
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_binary_settings_file_is_named_and_can_be_reset_with_a_backup(tmp_path):
    path = settings_file(tmp_path)
    path.parent.mkdir(parents=True)
    garbage = bytes(range(128, 256)) * 8
    path.write_bytes(garbage)
    res = avatarcam("settings", "path", home=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == str(path)
    doctor = avatarcam("doctor", home=tmp_path, drop=("DISPLAY",))
    assert doctor.returncode == 0 and "Traceback" not in doctor.stderr
    assert str(path) in doctor.stdout and "not text" in doctor.stdout and "settings reset" in doctor.stdout
    one_error_line(avatarcam("settings", "show", home=tmp_path), str(path), "not text", "avatarcam settings reset")
    reset = avatarcam("settings", "reset", home=tmp_path)
    assert reset.returncode == 0, reset.stderr
    backups = list(path.parent.glob("settings.yaml.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == garbage      # nothing the user had is lost
    assert str(backups[0]) in reset.stdout
    assert avatarcam("settings", "show", home=tmp_path).returncode == 0


# ------------------------------------------------------------------------------- smaller (11)

def test_settings_set_takes_key_value_and_show_hides_the_obs_password(tmp_path):
    res = avatarcam("settings", "set", "camera.fps=30", "obs.password=hunter2", home=tmp_path)
    assert res.returncode == 0, res.stderr
    shown = avatarcam("settings", "show", home=tmp_path).stdout
    assert "fps: 30" in shown and "hunter2" not in shown and "********" in shown
    assert yaml.safe_load(settings_file(tmp_path).read_text())["obs"]["password"] == "hunter2"
    one_error_line(avatarcam("settings", "set", "camera.fps", home=tmp_path), "KEY=VALUE")


def test_existing_out_needs_force(tmp_path, random_card):
    out = tmp_path / "mine.mp4"
    out.write_bytes(b"the user's own video")
    args = ("run", "--audio", str(VOICE), "--duration", "0.5", "--no-camera", "--model", str(random_card),
            "--out", str(out))
    one_error_line(avatarcam(*args, home=tmp_path), str(out), "--force")
    assert out.read_bytes() == b"the user's own video"
    res = avatarcam(*args, "--force", home=tmp_path)
    assert res.returncode == 0 and out.stat().st_size > 1000


def test_missing_camera_is_one_warning_on_its_own_line(tmp_path, random_card):
    res = avatarcam("run", "--audio", str(VOICE), "--duration", "1", "--model", str(random_card), home=tmp_path)
    assert res.returncode == 0, res.stderr
    cam = [line for line in res.stderr.split("\n") if "irtual camera" in line]
    if not cam:
        pytest.skip("a virtual camera exists on this machine")
    assert len(cam) == 1 and not re.search(r"virtual camera: no virtual camera", cam[0], re.I), res.stderr
    assert cam[0].split("\r")[-1].startswith("warning: "), repr(cam[0])     # not glued to the progress bar


def test_a_48_megapixel_photo_is_scaled_down(tmp_path):
    from PIL import Image
    photo = tmp_path / "phone.jpg"
    Image.new("RGB", (8000, 6000), (200, 120, 90)).save(photo, quality=80)
    res = avatarcam("avatars", "add", str(photo), "--name", "Me", home=tmp_path)
    assert res.returncode == 0, res.stderr
    image = Image.open(next((tmp_path / "avatars").glob("*/image.png")))
    assert image.size == (512, 512)


def test_doctor_with_a_mistyped_model_says_so(tmp_path):
    res = avatarcam("doctor", "--model", "tooon", home=tmp_path, drop=("DISPLAY",))
    lines = res.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "no model named 'tooon'" in line)
    assert lines[at].startswith("FAIL") and "(known: toon" in lines[at]
    assert "fix:" in lines[at + 1] and "reinstall" not in lines[at + 1].lower()


def test_tray_without_a_display_says_so(tmp_path):
    res = avatarcam("tray", home=tmp_path, drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    one_error_line(res, "no display", "avatarcam run")

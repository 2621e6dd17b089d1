"""`avatarcam doctor` / `avatarcam devices` on this machine: real PortAudio (private PulseAudio), real
OBS under Xvfb, real PyAV, real model cards on disk. The one boundary this machine cannot reach is a
virtual camera device (no v4l2loopback module can load here): the camera check is expected to FAIL
with the v4l2loopback fix, and the OK path runs against the recording pyvirtualcam backend."""
from __future__ import annotations

import glob
import importlib.util
import platform
import socket
import time

import pytest
import torch
from safetensors.torch import save_file

from avatarcam import doctor
from avatarcam.config import Settings
from avatarcam.doctor import (CAMERA, CHECK_NAMES, CONFIG_DIR, LIBRARY, MICROPHONE, MICROPHONES, OBS, PYAV,
                              Check, all_ok, check_display, check_model, devices_report,
                              format_checks, format_devices, guarded, run_checks)
from engine.card import DecoderSpec, ModelCard, save_card
from engine.config import ModelConfig, StreamConfig
from engine.model import CausalDiT
from tests.fixtures_obs import free_port, obs_server, xvfb_display  # noqa: F401
from tests.fixtures_pulse import pulse  # noqa: F401
from tests.fixtures_vcam import recording_camera  # noqa: F401

pytestmark = pytest.mark.timeout(120)

NO_CAMERA_HERE = platform.system() == "Linux" and not glob.glob("/dev/video*")


def _run(tmp_path, settings: Settings | None = None, **kw) -> dict[str, Check]:
    checks = run_checks(settings or Settings(), settings_path=tmp_path / "cfg" / "settings.yaml",
                        library_root=tmp_path / "avatars", **kw)
    assert [c.name for c in checks] == list(CHECK_NAMES)
    return {c.name: c for c in checks}


def _micro_card(folder):
    card = ModelCard(name="micro", model=ModelConfig.micro(), stream=StreamConfig(block_frames=2), fps=25,
                     width=64, height=64, decoder=DecoderSpec(kind="toon", weights="autoencoder.safetensors"))
    save_card(card, folder, CausalDiT(ModelConfig.micro()))
    save_file({"w": torch.zeros(2)}, str(folder / "autoencoder.safetensors"))
    return folder


# --------------------------------------------------------------------------------------- the report

def test_doctor_reports_every_item_on_this_machine_and_each_failure_has_a_fix(tmp_path):
    t0 = time.monotonic()
    checks = _run(tmp_path)
    elapsed = time.monotonic() - t0
    assert all(c.ok in (True, False, None) and c.detail for c in checks.values())
    assert all(c.fix for c in checks.values() if c.ok is False)
    assert checks["python"].ok and checks["torch"].ok and "torch 2." in checks["torch"].detail
    assert checks[PYAV].ok and "libx264" in checks[PYAV].detail and "AAC" in checks[PYAV].detail
    assert checks[CONFIG_DIR].ok and checks[LIBRARY].ok and "0 avatars" in checks[LIBRARY].detail
    assert checks[OBS].ok is None  # off by default
    assert elapsed < 15, f"doctor took {elapsed:.1f} s"


@pytest.mark.skipif(not NO_CAMERA_HERE, reason="needs a Linux host without a v4l2loopback device")
def test_camera_check_fails_with_the_v4l2loopback_fix(tmp_path):
    cam = _run(tmp_path)[CAMERA]
    assert cam.ok is False and "v4l2 loopback device" in cam.detail
    assert "modprobe v4l2loopback" in cam.fix and "exclusive_caps=1" in cam.fix
    text = format_checks([cam])
    assert "FAIL  virtual camera" in text and "fix: No virtual camera" in text


def test_camera_check_names_the_device_when_a_backend_opens(recording_camera):
    """The camera device itself is the unreachable boundary: pyvirtualcam's recording backend stands in."""
    settings = Settings()
    settings.camera.backend = "recording"
    cam = doctor.check_camera(settings)
    assert cam.ok is True and cam.detail.startswith("/dev/video-recording (recording), 1280x720")
    assert recording_camera.instances and recording_camera.instances[0].closed


def test_microphone_checks_list_the_sound_servers_devices(tmp_path, pulse):
    checks = _run(tmp_path)
    assert checks["portaudio"].ok and "ALSA" in checks["portaudio"].detail
    assert checks[MICROPHONES].ok and "pulse" in checks[MICROPHONES].detail
    assert checks[MICROPHONE].ok and "system default" in checks[MICROPHONE].detail


def test_an_unknown_microphone_fails_and_says_how_to_pick_one(tmp_path, pulse):
    settings = Settings()
    settings.audio.mic = "No Such Mic"
    mic = doctor.check_selected_microphone(settings)
    assert mic.ok is False and "'No Such Mic' not found" in mic.detail and "pulse" in mic.detail
    assert "avatarcam devices" in mic.fix


def test_delayed_output_is_skipped_when_off_and_resolved_when_set(pulse):
    settings = Settings()
    assert doctor.check_delayed_output(settings).ok is None
    settings.audio.delayed_output = "pulse"
    out = doctor.check_delayed_output(settings)
    assert out.ok is True and "pulse" in out.detail


# --------------------------------------------------------------------------------------- OBS

def _obs_settings(port: int, password: str = "") -> Settings:
    settings = Settings()
    obs = settings.obs
    obs.enabled, obs.host, obs.port, obs.password = True, "127.0.0.1", port, password
    return settings


def test_obs_nobody_listening_fails_fast_with_the_websocket_fix(tmp_path):
    t0 = time.monotonic()
    obs = _run(tmp_path, _obs_settings(free_port()))[OBS]
    assert obs.ok is False and "not running" in obs.detail and "Enable WebSocket server" in obs.fix
    assert time.monotonic() - t0 < 15


def test_obs_that_never_answers_costs_only_the_short_timeout():
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        t0 = time.monotonic()
        obs = doctor.check_obs(_obs_settings(silent.getsockname()[1]), timeout_s=0.5)
        elapsed = time.monotonic() - t0
    assert obs.ok is False and "no answer" in obs.detail
    assert elapsed < 3, f"took {elapsed:.1f} s"


@pytest.mark.realparts
def test_obs_check_connects_to_a_real_obs(obs_server):
    ok = doctor.check_obs(_obs_settings(obs_server.port, obs_server.password))
    assert ok.ok is True and ok.detail.startswith("Connected to OBS")
    wrong = doctor.check_obs(_obs_settings(obs_server.port, "wrong-password"))
    assert wrong.ok is False and "password" in wrong.detail


# --------------------------------------------------------------------------------------- model, files

def test_model_check_passes_for_a_card_whose_files_exist(tmp_path):
    check = check_model(str(_micro_card(tmp_path / "micro")))
    assert check.ok is True and check.detail.startswith("micro (") and "2 weight files" in check.detail


def test_model_check_names_a_missing_decoder_weight_file(tmp_path):
    folder = _micro_card(tmp_path / "micro")
    (folder / "autoencoder.safetensors").unlink()
    check = check_model(str(folder))
    assert check.ok is False and "autoencoder.safetensors" in check.detail and check.fix


def test_model_check_rejects_a_damaged_safetensors_file(tmp_path):
    folder = _micro_card(tmp_path / "micro")
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
    check = check_model(str(folder))
    assert check.ok is False and "not a readable safetensors" in check.detail


def test_missing_shipped_model_says_the_package_is_broken_and_how_to_reinstall(tmp_path):
    check = check_model("toon", models_dir=tmp_path / "models")
    assert check.ok is False and "shipped model 'toon' is missing" in check.detail
    assert "reinstall" in check.fix and "pip install --force-reinstall" in check.fix


def test_missing_user_model_folder_says_which_setting_to_fix(tmp_path):
    check = check_model(str(tmp_path / "nowhere"))
    assert check.ok is False and "does not exist" in check.detail and "engine.model" in check.fix


def test_config_dir_that_cannot_be_created_fails(tmp_path):
    (tmp_path / "blocker").write_text("a file where the folder should be")
    check = doctor.check_config_dir(tmp_path / "blocker" / "settings.yaml")
    assert check.ok is False and "cannot write" in check.detail and "writable" in check.fix


def test_pyside6_is_reported_as_installed_here_or_with_the_install_command():
    check = doctor.check_pyside6()
    if importlib.util.find_spec("PySide6") is None:
        assert check.ok is False and "PySide6-Essentials" in check.fix
    else:
        assert check.ok is True and check.detail.startswith("PySide6 ")


def test_display_check_skips_without_a_display_and_names_it_otherwise(monkeypatch):
    if platform.system() != "Linux":
        pytest.skip("DISPLAY / WAYLAND_DISPLAY are Linux's")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert check_display().ok is None
    monkeypatch.setenv("DISPLAY", ":42")
    shown = check_display()
    assert shown.ok is True and "X11 :42" in shown.detail


# --------------------------------------------------------------------------------------- robustness

def test_a_check_that_raises_becomes_a_failure_line(tmp_path, monkeypatch):
    """Fault injection: the device listing is replaced by one that raises, as a broken driver would."""
    import avatarcam.audio

    def broken():
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(avatarcam.audio, "list_input_devices", broken)
    mics = _run(tmp_path)[MICROPHONES]
    assert mics.ok is False and "RuntimeError: driver exploded" in mics.detail and mics.fix


def test_a_check_that_hangs_is_cut_off_at_its_timeout():
    t0 = time.monotonic()
    check = guarded("stuck", lambda: time.sleep(5) or Check("stuck", True, ""), timeout=0.3)
    assert check.ok is False and "no answer within 0.3 s" in check.detail
    assert time.monotonic() - t0 < 1.5


def test_format_checks_aligns_columns_and_puts_each_fix_under_its_failure():
    checks = [Check("python", True, "Python 3.11"), Check("virtual camera", False, "no device", "load it\nthen retry"),
              Check("obs", None, "off", "enable it")]
    lines = format_checks(checks).splitlines()
    assert lines[0] == "OK    python          Python 3.11"
    assert lines[1] == "FAIL  virtual camera  no device"
    assert lines[2] == "                      fix: load it" and lines[3] == "                           then retry"
    assert lines[4] == "SKIP  obs             off" and lines[5].endswith("fix: enable it")
    assert lines[-1] == "1 check failed."
    assert not all_ok(checks) and all_ok(checks[:1] + checks[2:])


# --------------------------------------------------------------------------------------- devices

def test_devices_report_lists_audio_devices_and_the_camera_state(pulse):
    report = devices_report()
    assert "pulse" in {d["name"] for d in report["microphones"]}
    assert "pulse" in {d["name"] for d in report["outputs"]}
    cam = report["camera"]
    assert cam["available"] or (cam["reason"] and cam["fix"])
    text = format_devices(report)
    assert "Microphones (audio.mic):" in text and "Virtual camera:" in text
    mic_line = next(line for line in text.splitlines() if "pulse" in line)
    assert mic_line.strip().split()[0].isdigit()  # the index a user can put in audio.mic
    if NO_CAMERA_HERE:
        assert "not available" in text and "modprobe v4l2loopback" in text


def test_devices_report_names_the_camera_device_when_one_opens(recording_camera):
    settings = Settings()
    settings.camera.backend = "recording"
    cam = devices_report(settings)["camera"]
    assert cam == {"available": True, "device": "/dev/video-recording", "backend": "recording", "reason": None,
                   "fix": None}

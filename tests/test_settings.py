"""Settings file: defaults, YAML round trip, validation messages, unknown keys, atomic private save."""
from __future__ import annotations

import os
import stat

import pytest
import yaml

from avatarcam.config import (Settings, apply_overrides, default_settings_path, load_settings, save_settings,
                              settings_from_dict, validate)
from avatarcam.errors import ConfigError


def test_defaults_cover_every_section_and_use_obs_websocket_v5_port():
    s = Settings()
    assert s.obs.port == 4455
    assert (s.camera.width, s.camera.height, s.camera.fps) == (1280, 720, 25)
    assert s.engine.device == "auto" and s.engine.backend == "auto"
    assert s.anchors.style_anchor and s.anchors.rope_reindex and s.anchors.anchor_audio_zero
    assert s.audio.delay_auto and s.obs.sync_offset_auto
    validate(s)


def test_missing_file_gives_defaults(tmp_path):
    assert load_settings(tmp_path / "none.yaml") == Settings()


def test_default_path_is_in_the_user_config_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_settings_path() == tmp_path / "avatarcam" / "settings.yaml"


def test_yaml_round_trip_keeps_every_value(tmp_path):
    s = Settings()
    s.audio.mic = "pulse"
    s.audio.delayed_output = "AvatarCam Mic"
    s.camera.fps = 30
    s.camera.backend = "v4l2loopback"
    s.output.record = str(tmp_path / "take.mp4")
    s.obs.enabled, s.obs.password, s.obs.sync_offset_ms = True, "s3cr:et #1", -120
    s.anchors.temporal_frames, s.anchors.preset = 8, "stable"
    s.engine.model, s.engine.dtype = "/models/avatarforcing-1.3b", "bfloat16"
    s.avatar.current = "Robo"
    s.ui.geometry, s.ui.theme = "AdnQywADAAAAAAA=", "dark"
    path = save_settings(s, tmp_path / "settings.yaml")
    assert load_settings(path) == s


def test_save_is_private_and_leaves_no_temp_files(tmp_path):
    path = save_settings(Settings(), tmp_path / "cfg" / "settings.yaml")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["settings.yaml"]


def test_save_over_an_existing_file_replaces_it_whole(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("camera:\n  fps: 30\n" + "# padding\n" * 1000)
    os.chmod(path, 0o644)
    save_settings(Settings(), path)
    assert "padding" not in path.read_text()
    assert load_settings(path).camera.fps == 25
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_invalid_value_in_the_file_names_the_key_value_and_range(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("camera:\n  fps: 500\n")
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    msg = str(e.value)
    assert "camera.fps" in msg and "500" in msg and "1..120" in msg and str(path) in msg


def test_invalid_choice_lists_the_allowed_values():
    with pytest.raises(ConfigError) as e:
        settings_from_dict({"engine": {"device": "tpu"}})
    msg = str(e.value)
    assert "engine.device" in msg and "'tpu'" in msg and "'auto', 'cpu', 'cuda'" in msg


def test_wrong_type_is_rejected_with_the_expected_type():
    with pytest.raises(ConfigError, match=r"obs\.enabled: 'yes please' .*true/false"):
        settings_from_dict({"obs": {"enabled": "yes please"}})


def test_unknown_keys_are_reported_in_one_warning_and_kept_on_save(tmp_path, caplog):
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump({"camera": {"fps": 30, "fsp": 24}, "future": {"x": 1}}))
    with caplog.at_level("WARNING", logger="avatarcam.config"):
        s = load_settings(path)
    assert s.camera.fps == 30
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "camera.fsp" in warnings[0] and "future" in warnings[0]
    save_settings(s, path)
    data = yaml.safe_load(path.read_text())
    assert data["camera"]["fsp"] == 24 and data["future"] == {"x": 1}


def test_broken_yaml_is_a_config_error_with_the_line(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("camera:\n  fps: 30\n  width: [1280\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_settings(path)


def test_overrides_convert_cli_text_and_validate():
    s = apply_overrides(Settings(), {"camera.fps": "30", "obs.enabled": "true", "audio.mic": "2",
                                     "output.record": "out.mp4", "audio.delayed_output": "none"})
    assert s.camera.fps == 30 and s.obs.enabled is True and s.audio.mic == 2
    assert s.output.record == "out.mp4" and s.audio.delayed_output is None


def test_overrides_do_not_change_the_original():
    base = Settings()
    apply_overrides(base, {"camera.fps": 30})
    assert base.camera.fps == 25


def test_override_with_a_bad_value_names_the_flag_key():
    with pytest.raises(ConfigError, match=r"camera\.fps: 'fast' is not valid; expected an integer in 1\.\.120"):
        apply_overrides(Settings(), {"camera.fps": "fast"})


def test_override_of_an_unknown_key_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"camera\.fsp: unknown setting; camera has enabled, backend"):
        apply_overrides(Settings(), {"camera.fsp": 30})


def test_validate_catches_values_set_in_code():
    s = Settings()
    s.obs.port = 70000
    with pytest.raises(ConfigError, match=r"obs\.port: 70000 .*1\.\.65535"):
        validate(s)

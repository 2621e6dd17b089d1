"""ObsController against a real OBS Studio 29 + obs-websocket 5 under Xvfb (no mocks).

One OBS is shared by the module; the tests that kill OBS or start it late get their own instance.
Scenes and inputs are arranged (and checked) through a plain obs-websocket-py client.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
import wave

import numpy as np
import pytest

from avatarcam import obs
from avatarcam.errors import ConfigError, DeviceError
from avatarcam.obs import ObsConfig, ObsController
from tests.fixtures_obs import free_port, obs_factory, obs_server, xvfb_display  # noqa: F401

pytestmark = [pytest.mark.realparts, pytest.mark.timeout(120)]


def _req():
    from obswebsocket import requests
    return requests


def _call(ws, request):
    """Arrange/check helper: a failed request in the test setup is a test error, not a silent False."""
    result = ws.call(request)
    assert result.status, f"{request.name} failed"
    return result.datain


def _prepare(server, tmp_path_factory) -> None:
    """Scene 'Avatar' with a hidden video source 'AvatarFace'; an audio input 'AvatarMic' in 'Scene'."""
    R = _req()
    wav = tmp_path_factory.mktemp("obs-media") / "tone.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(16000) * 0.1) * 8000).astype("<i2").tobytes())
    ws = server.client()
    try:
        _call(ws, R.CreateScene(sceneName="Avatar"))
        _call(ws, R.CreateInput(sceneName="Avatar", inputName="AvatarFace", inputKind="color_source_v3",
                                inputSettings={"color": 0xFF00FF00}, sceneItemEnabled=False))
        _call(ws, R.CreateInput(sceneName="Scene", inputName="AvatarMic", inputKind="ffmpeg_source",
                                inputSettings={"local_file": str(wav), "looping": True}, sceneItemEnabled=True))
        _call(ws, R.SetCurrentProgramScene(sceneName="Scene"))
    finally:
        ws.disconnect()


def _obs_state(server) -> dict:
    R = _req()
    ws = server.client()
    try:
        item = _call(ws, R.GetSceneItemId(sceneName="Avatar", sourceName="AvatarFace"))["sceneItemId"]
        return {
            "scene": _call(ws, R.GetCurrentProgramScene())["currentProgramSceneName"],
            "face": _call(ws, R.GetSceneItemEnabled(sceneName="Avatar", sceneItemId=item))["sceneItemEnabled"],
            "offset": _call(ws, R.GetInputAudioSyncOffset(inputName="AvatarMic"))["inputAudioSyncOffset"],
        }
    finally:
        ws.disconnect()


def _cfg(server, **kw) -> ObsConfig:
    base = dict(port=server.port, password=server.password, scene="Avatar", source="AvatarFace",
                mic_input="AvatarMic", retry_max_s=0.5, timeout_s=3.0)
    base.update(kw)
    return ObsConfig(**base)


def _wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def shared_obs(obs_server, tmp_path_factory):
    _prepare(obs_server, tmp_path_factory)
    return obs_server


@pytest.fixture
def obs_clean(shared_obs):
    """Each test starts from: program scene 'Scene', AvatarFace hidden, AvatarMic offset 0."""
    R = _req()
    ws = shared_obs.client()
    try:
        item = _call(ws, R.GetSceneItemId(sceneName="Avatar", sourceName="AvatarFace"))["sceneItemId"]
        _call(ws, R.SetSceneItemEnabled(sceneName="Avatar", sceneItemId=item, sceneItemEnabled=False))
        _call(ws, R.SetInputAudioSyncOffset(inputName="AvatarMic", inputAudioSyncOffset=0))
        _call(ws, R.SetCurrentProgramScene(sceneName="Scene"))
    finally:
        ws.disconnect()
    return shared_obs


@pytest.fixture
def controller_factory():
    made: list[ObsController] = []

    def make(cfg: ObsConfig, **kw) -> ObsController:
        ctl = ObsController(cfg, **kw)
        made.append(ctl)
        ctl.connect()
        return ctl

    yield make
    for ctl in made:
        t0 = time.monotonic()
        ctl.close(timeout=5)
        assert time.monotonic() - t0 < 6, "close() must not hang"


def test_config_rejects_bad_port_and_hides_password():
    with pytest.raises(ConfigError, match="1..65535"):
        ObsConfig(port=70000)
    assert ObsConfig().port == 4455
    assert "s3cret-word" not in repr(ObsConfig(password="s3cret-word"))


def test_connects_and_reports_status_changes(obs_clean, controller_factory):
    seen: list[str] = []
    ctl = controller_factory(_cfg(obs_clean), on_status=seen.append)
    assert ctl.wait_connected(10), ctl.status
    assert ctl.status == "connected"
    assert seen[0] == "connecting" and seen[-1] == "connected"


def test_test_connection_reports_obs_version(obs_clean):
    ok, message = obs.test_connection(_cfg(obs_clean))
    assert ok, message
    assert "OBS 29" in message and "obs-websocket 5" in message


def test_test_connection_explains_wrong_password(obs_clean):
    ok, message = obs.test_connection(_cfg(obs_clean, password="not-the-Password-1"))
    assert not ok
    assert "rejected the password" in message and "WebSocket Server Settings" in message
    assert "not-the-Password-1" not in message and obs_clean.password not in message


def test_test_connection_explains_obs_not_running():
    ok, message = obs.test_connection(ObsConfig(port=free_port(), password="x", timeout_s=2))
    assert not ok
    assert "not running" in message and "Enable WebSocket server" in message


def test_lists_scenes_inputs_and_audio_inputs(obs_clean, controller_factory):
    ctl = controller_factory(_cfg(obs_clean))
    assert ctl.wait_connected(10), ctl.status
    assert {"Scene", "Avatar"} <= set(ctl.list_scenes())
    assert ("AvatarMic", "ffmpeg_source") in ctl.list_inputs()
    audio = ctl.list_audio_inputs()
    assert "AvatarMic" in audio and "AvatarFace" not in audio


def test_queries_raise_device_error_when_not_connected():
    ctl = ObsController(ObsConfig(port=free_port()))
    with pytest.raises(DeviceError, match="not connected"):
        ctl.list_scenes()


def test_start_switches_scene_and_shows_source_then_restore_puts_them_back(obs_clean, controller_factory):
    ctl = controller_factory(_cfg(obs_clean))
    ctl.start_stream_scene()
    assert ctl.wait_idle(10), ctl.status
    state = _obs_state(obs_clean)
    assert (state["scene"], state["face"]) == ("Avatar", True)
    ctl.restore()
    assert ctl.wait_idle(10), ctl.status
    state = _obs_state(obs_clean)
    assert (state["scene"], state["face"]) == ("Scene", False)


def test_sync_offset_is_set_on_the_mic_input_and_restored(obs_clean, controller_factory):
    ctl = controller_factory(_cfg(obs_clean))
    ctl.set_sync_offset_ms(237.4)
    assert ctl.wait_idle(10), ctl.status
    assert _obs_state(obs_clean)["offset"] == 237
    ctl.restore()
    assert ctl.wait_idle(10), ctl.status
    assert _obs_state(obs_clean)["offset"] == 0


def test_repeated_sync_offsets_are_coalesced_and_never_block(obs_clean, controller_factory, caplog):
    caplog.set_level(logging.DEBUG, logger="avatarcam.obs")
    ctl = controller_factory(_cfg(obs_clean))
    assert ctl.wait_connected(10), ctl.status
    t0 = time.perf_counter()
    for _ in range(500):
        ctl.set_sync_offset_ms(180)
    for ms in range(181, 301):
        ctl.set_sync_offset_ms(ms)
    spent = time.perf_counter() - t0
    assert spent < 0.5, f"620 calls took {spent:.3f} s"
    assert ctl.wait_idle(10), ctl.status
    assert _obs_state(obs_clean)["offset"] == 300
    sets = [r for r in caplog.records if "sync offset =" in r.getMessage()]
    assert sum("= 180 ms" in r.getMessage() for r in sets) <= 1
    assert len(sets) < 121


def test_sync_offset_not_set_when_auto_sync_is_off(obs_clean, controller_factory):
    ctl = controller_factory(_cfg(obs_clean, auto_sync_offset=False))
    ctl.set_sync_offset_ms(400)
    ctl.start_stream_scene()
    assert ctl.wait_idle(10), ctl.status
    assert _obs_state(obs_clean)["offset"] == 0


def test_failed_requests_become_warnings_naming_the_request(obs_clean, controller_factory, caplog):
    caplog.set_level(logging.WARNING, logger="avatarcam.obs")
    ctl = controller_factory(_cfg(obs_clean, scene="NoSuchScene", source=None, mic_input="AvatarFace"))
    ctl.start_stream_scene()
    ctl.set_sync_offset_ms(120)
    assert ctl.wait_idle(10), ctl.status
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "SetCurrentProgramScene failed (code 600)" in text and "Create the scene 'NoSuchScene'" in text
    assert "AudioSyncOffset failed (code 604)" in text and "input with audio" in text
    assert ctl.status == "connected"
    assert _obs_state(obs_clean)["scene"] == "Scene"


def test_wrong_password_gives_error_status_and_retries_without_raising(obs_clean, controller_factory):
    ctl = controller_factory(_cfg(obs_clean, password="wrong-Password-9"))
    assert _wait_for(lambda: ctl.connect_attempts >= 2, 10)
    assert ctl.status.startswith("error: OBS rejected the password")
    ctl.start_stream_scene()  # asking while not connected is fine: nothing raises
    ctl.set_sync_offset_ms(90)
    assert not ctl.wait_idle(0.2)


def test_password_never_appears_in_logs(obs_clean, controller_factory, caplog):
    caplog.set_level(logging.DEBUG)  # root: includes obswebsocket's and websocket-client's loggers
    for name in ("obswebsocket", "obswebsocket.core", "websocket", "avatarcam.obs"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    good = controller_factory(_cfg(obs_clean))
    bad = controller_factory(_cfg(obs_clean, password="wrong-Password-9"))
    assert good.wait_connected(10), good.status
    good.start_stream_scene()
    good.set_sync_offset_ms(50)
    assert good.wait_idle(10)
    good.list_inputs()
    assert _wait_for(lambda: bad.connect_attempts >= 2, 10)
    obs.test_connection(_cfg(obs_clean, password="wrong-Password-9"))
    assert caplog.records, "nothing was logged at DEBUG"
    for secret in (obs_clean.password, "wrong-Password-9"):
        assert secret not in caplog.text
        assert secret not in good.status and secret not in bad.status


def test_obs_absent_at_start_warns_retries_and_connects_when_it_appears(obs_factory, controller_factory, caplog):
    caplog.set_level(logging.WARNING, logger="avatarcam.obs")
    server = obs_factory()
    ctl = controller_factory(_cfg(server, scene=None, source=None, mic_input=None))
    assert _wait_for(lambda: ctl.connect_attempts >= 3, 10)
    assert ctl.status.startswith("error: OBS is not running")
    warnings = [r for r in caplog.records if "not running" in r.getMessage()]
    assert len(warnings) == 1, "one warning, not one per retry"
    server.start()
    assert ctl.wait_connected(15), ctl.status


def test_reconnects_after_obs_is_killed_and_reapplies_state(obs_factory, controller_factory, tmp_path_factory, caplog):
    caplog.set_level(logging.WARNING, logger="avatarcam.obs")
    server = obs_factory().start()
    _prepare(server, tmp_path_factory)
    # OBS saves its scene collection on every change; keep this pristine copy to restart from.
    collection = server.config_dir / "obs-studio" / "basic" / "scenes" / "Untitled.json"
    assert _wait_for(lambda: collection.exists() and "AvatarMic" in collection.read_text(), 10)
    pristine = collection.read_bytes()

    ctl = controller_factory(_cfg(server))
    ctl.start_stream_scene()
    ctl.set_sync_offset_ms(150)
    assert ctl.wait_idle(10), ctl.status
    assert _obs_state(server) == {"scene": "Avatar", "face": True, "offset": 150}

    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    assert _wait_for(lambda: ctl.status != "connected", 5)
    ctl.set_sync_offset_ms(300)  # the stream goes on while OBS is away: nothing blocks or raises
    assert _wait_for(lambda: ctl.status.startswith("error: OBS is not running"), 5), ctl.status
    assert ctl._worker is not None and ctl._worker.is_alive()

    collection.write_bytes(pristine)
    server.start()
    assert ctl.wait_connected(15), ctl.status
    assert ctl.wait_idle(10), ctl.status
    assert _obs_state(server) == {"scene": "Avatar", "face": True, "offset": 300}
    assert any("connection to OBS was lost" in r.getMessage() for r in caplog.records)

    ctl.restore()
    assert ctl.wait_idle(10), ctl.status
    assert _obs_state(server) == {"scene": "Scene", "face": False, "offset": 0}


def test_close_is_prompt_while_obs_is_unreachable():
    ctl = ObsController(ObsConfig(port=free_port(), retry_max_s=5))
    ctl.connect()
    assert _wait_for(lambda: ctl.connect_attempts >= 1 and ctl.status.startswith("error"), 5)
    t0 = time.monotonic()
    ctl.close(timeout=3)
    assert time.monotonic() - t0 < 1.0
    assert ctl.status == "disconnected"
    assert not any(t.name == "obs-controller" and t.is_alive() for t in threading.enumerate())

"""The keyed avatar in a real OBS 29 (obs-websocket 5, under Xvfb): created with its Chroma Key on
connect, updated rather than duplicated, gone after restore, where the user left it next time; a
missing scene and a missing filter kind each give one message while the controller goes on."""
from __future__ import annotations

import logging

import pytest

from avatarcam.obs import ObsConfig, ObsController
from avatarcam.obs_keyed import FILTER_KIND, KeyedSource, camera_input, obs_colour
from engine.toon.chroma import KEY_COLOURS
from tests.fixtures_obs import obs_server, xvfb_display  # noqa: F401

pytestmark = [pytest.mark.realparts, pytest.mark.timeout(120)]


def _req():
    from obswebsocket import requests
    return requests


def _ask(server, request):
    ws = server.client()
    try:
        return ws.call(request)
    finally:
        ws.disconnect()


def _scene(server, name):
    if not _ask(server, _req().GetSceneItemList(sceneName=name)).status:
        assert _ask(server, _req().CreateScene(sceneName=name)).status


def _items(server, scene):
    return [i["sourceName"] for i in _ask(server, _req().GetSceneItemList(sceneName=scene)).datain["sceneItems"]]


def _keyed(server, scene, tmp_path, **kw):
    # This machine has no camera device (no V4L2 in its kernel), so the keyed source captures a colour
    # source instead of v4l2_input: the input kind is the only thing replaced, every request is real.
    src = KeyedSource(scene=scene, key=KEY_COLOURS["green"], input_kind="color_source_v3",
                      input_settings={"color": obs_colour((0, 255, 0)), "width": 640, "height": 360},
                      layout_file=tmp_path / "layout.json", **kw)
    return ObsController(ObsConfig(port=server.port, password=server.password, keyed=src, retry_max_s=0.5))


def test_the_input_kind_follows_the_os():
    assert camera_input(None, "linux") == ("v4l2_input", {"device_id": "/dev/video10"})
    assert camera_input("/dev/video3", "linux")[1] == {"device_id": "/dev/video3"}
    assert camera_input(None, "win32")[0] == "dshow_input"
    assert camera_input(None, "darwin")[0] == "av_capture_input_v2"


def test_connect_creates_the_keyed_source_with_its_filter_and_restore_removes_it(obs_server, tmp_path):
    _scene(obs_server, "Game")
    before = _items(obs_server, "Game")
    with _keyed(obs_server, "Game", tmp_path) as ctl:
        ctl.start_stream_scene()
        assert ctl.wait_connected(30) and ctl.wait_idle(30)
        assert "AvatarCam (keyed)" in _items(obs_server, "Game")
        f = _ask(obs_server, _req().GetSourceFilter(sourceName="AvatarCam (keyed)", filterName="AvatarCam chroma key"))
        assert f.status and f.datain["filterKind"] == FILTER_KIND and f.datain["filterEnabled"]
        settings = f.datain["filterSettings"]
        assert settings["key_color_type"] == "custom" and settings["key_color"] == obs_colour((0, 255, 0))
        assert (settings["similarity"], settings["smoothness"]) == (300, 60)
        ctl.restore()
        assert ctl.wait_idle(30)
        assert _items(obs_server, "Game") == before
        assert not _ask(obs_server, _req().GetInputSettings(inputName="AvatarCam (keyed)")).status


def test_a_second_start_updates_instead_of_duplicating_and_keeps_the_users_place(obs_server, tmp_path):
    _scene(obs_server, "Game2")
    R = _req()
    with _keyed(obs_server, "Game2", tmp_path) as ctl:
        ctl.start_stream_scene()
        assert ctl.wait_connected(30) and ctl.wait_idle(30)
        item = _ask(obs_server, R.GetSceneItemId(sceneName="Game2", sourceName="AvatarCam (keyed)")).datain["sceneItemId"]
        assert _ask(obs_server, R.SetSceneItemTransform(sceneName="Game2", sceneItemId=item, sceneItemTransform={
            "positionX": 600.0, "positionY": 300.0, "scaleX": 0.5, "scaleY": 0.5})).status   # the user moves it
        ctl.restore()
        assert ctl.wait_idle(30)
    with _keyed(obs_server, "Game2", tmp_path) as ctl:
        ctl.start_stream_scene()
        assert ctl.wait_connected(30) and ctl.wait_idle(30)
        assert _items(obs_server, "Game2").count("AvatarCam (keyed)") == 1
        item = _ask(obs_server, R.GetSceneItemId(sceneName="Game2", sourceName="AvatarCam (keyed)")).datain["sceneItemId"]
        t = _ask(obs_server, R.GetSceneItemTransform(sceneName="Game2", sceneItemId=item)).datain["sceneItemTransform"]
        assert (t["positionX"], t["positionY"], t["scaleX"]) == (600.0, 300.0, 0.5)


def test_a_scene_that_no_longer_exists_is_one_message(obs_server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="avatarcam.obs")
    with _keyed(obs_server, "Deleted scene", tmp_path) as ctl:
        ctl.start_stream_scene()
        assert ctl.wait_connected(30) and ctl.wait_idle(30)
        assert ctl.status == "connected"
    said = [r.getMessage() for r in caplog.records if "Deleted scene" in r.getMessage()]
    assert len(said) == 1 and "no longer exists" in said[0]


def test_an_obs_without_the_filter_kind_is_one_message(obs_server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="avatarcam.obs")
    _scene(obs_server, "Game3")
    with _keyed(obs_server, "Game3", tmp_path, filter_kind="chroma_key_filter_v9") as ctl:
        ctl.start_stream_scene()
        assert ctl.wait_connected(30) and ctl.wait_idle(30)
        assert "AvatarCam (keyed)" in _items(obs_server, "Game3")    # the source is there, unkeyed
    said = [r.getMessage() for r in caplog.records if "chroma_key_filter_v9" in r.getMessage()]
    assert len(said) == 1 and "key the source" in said[0]


def _session(obs_server, tmp_path, look, scene):
    """A real session on the shipped model, OBS on with keying, streaming `look` from a wav file."""
    import wave

    import numpy as np

    from avatarcam.avatars import AvatarLibrary
    from avatarcam.session import Session
    from avatarcam.stream_options import stream_options
    from tests.fixtures_qt import quiet_settings

    AvatarLibrary().new_cartoon(identity=look, name="Keyed")
    wav = tmp_path / "speech.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((3000 * np.sin(np.arange(16000) * 0.08)).astype(np.int16).tobytes())
    s = quiet_settings()
    s.avatar.current = "Keyed"
    s.obs.enabled, s.obs.port, s.obs.password = True, obs_server.port, obs_server.password
    s.obs.scene, s.obs.source, s.obs.mic_input, s.obs.keyed = scene, "", "", True
    options = stream_options(s)
    options.audio_file, options.camera = wav, False
    session = Session(s, options)
    warnings: list[str] = []
    session.on_event(lambda e: warnings.append(str(e.data)) if e.kind == "warning" else None)
    return session, warnings


def test_a_green_screen_avatar_streams_keyed_into_the_scene_and_leaves_it_clean(obs_server, tmp_path, monkeypatch):
    from engine.toon import random_identity
    from engine.toon.creator import set_key
    monkeypatch.setenv("AVATARCAM_HOME", str(tmp_path / "home"))
    _scene(obs_server, "Stream")
    session, warnings = _session(obs_server, tmp_path, set_key(random_identity(0), "magenta"), "Stream")
    session.start()
    try:
        assert session._run.obs.wait_connected(30) and session._run.obs.wait_idle(30)
        assert "AvatarCam (keyed)" in _items(obs_server, "Stream")
        kind = _ask(obs_server, _req().GetInputSettings(inputName="AvatarCam (keyed)")).datain["inputKind"]
        assert kind == camera_input(None)[0]
        f = _ask(obs_server, _req().GetSourceFilter(sourceName="AvatarCam (keyed)", filterName="AvatarCam chroma key"))
        assert f.datain["filterSettings"]["key_color"] == obs_colour(KEY_COLOURS["magenta"])
        assert session.wait(120)
    finally:
        session.stop()
    assert "AvatarCam (keyed)" not in _items(obs_server, "Stream")
    assert warnings == []


def test_a_key_too_close_to_the_clothes_is_one_warning_and_the_stream_goes_on(obs_server, tmp_path, monkeypatch):
    from engine.toon import random_identity
    from engine.toon.creator import set_control, set_key
    monkeypatch.setenv("AVATARCAM_HOME", str(tmp_path / "home"))
    _scene(obs_server, "Stream2")
    look = set_key(set_control(random_identity(0), "shirt", (51, 242, 51)), "green")
    session, warnings = _session(obs_server, tmp_path, look, "Stream2")
    session.start()
    try:
        assert session.wait(120)
    finally:
        session.stop()
    assert len(warnings) == 1 and "clothes" in warnings[0] and "magenta" in warnings[0]

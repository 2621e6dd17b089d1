"""The keyed avatar in a real OBS 29 (obs-websocket 5, under Xvfb): created with its Chroma Key on
connect, updated rather than duplicated, gone after restore, where the user left it next time; a
missing scene and a missing filter kind each give one message while the controller goes on. An
avatar switched mid-stream re-keys the filter (or takes the source out when it has no green screen),
also while OBS is away, and stop still leaves the scene as it was."""
from __future__ import annotations

import dataclasses
import logging
import time

import pytest

from avatarcam.obs import ObsConfig, ObsController
from avatarcam.obs_keyed import FILTER_KIND, KeyedSource, camera_input, obs_colour
from engine.toon.chroma import KEY_COLOURS
from tests.fixtures_card import random_card  # noqa: F401
from tests.fixtures_obs import obs_factory, obs_server, xvfb_display  # noqa: F401

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


def _source(scene, tmp_path, key=KEY_COLOURS["green"], **kw):
    # This machine has no camera device (no V4L2 in its kernel), so the keyed source captures a colour
    # source instead of v4l2_input: the input kind is the only thing replaced, every request is real.
    return KeyedSource(scene=scene, key=key, input_kind="color_source_v3",
                       input_settings={"color": obs_colour(key), "width": 640, "height": 360},
                       layout_file=tmp_path / "layout.json", **kw)


def _keyed(server, scene, tmp_path, **kw):
    src = _source(scene, tmp_path, **kw)
    return ObsController(ObsConfig(port=server.port, password=server.password, keyed=src, retry_max_s=0.5))


def _key_colour(server):
    """The key colour OBS's filter on the keyed source has now."""
    f = _ask(server, _req().GetSourceFilter(sourceName="AvatarCam (keyed)", filterName="AvatarCam chroma key"))
    assert f.status, f.datain
    return f.datain["filterSettings"]["key_color"]


def _position(server, scene):
    R = _req()
    item = _ask(server, R.GetSceneItemId(sceneName=scene, sourceName="AvatarCam (keyed)")).datain["sceneItemId"]
    t = _ask(server, R.GetSceneItemTransform(sceneName=scene, sceneItemId=item)).datain["sceneItemTransform"]
    return t["positionX"], t["positionY"], t["scaleX"]


def _move(server, scene, x, y, scale):
    """What a user does in OBS: drag and size the keyed source."""
    R = _req()
    item = _ask(server, R.GetSceneItemId(sceneName=scene, sourceName="AvatarCam (keyed)")).datain["sceneItemId"]
    assert _ask(server, R.SetSceneItemTransform(sceneName=scene, sceneItemId=item, sceneItemTransform={
        "positionX": x, "positionY": y, "scaleX": scale, "scaleY": scale})).status


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
        for key in ("magenta", "blue", "green"):        # avatar switches: the same advice is not repeated
            ctl.set_keyed(_source("Deleted scene", tmp_path, key=KEY_COLOURS[key]))
            assert ctl.wait_idle(30)
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


def test_a_new_key_colour_mid_stream_retunes_the_filter_and_none_takes_the_source_out(obs_server, tmp_path):
    _scene(obs_server, "Game5")
    before = _items(obs_server, "Game5")
    green = _source("Game5", tmp_path)
    blue = dataclasses.replace(green, key=KEY_COLOURS["blue"])
    with _keyed(obs_server, "Game5", tmp_path) as ctl:
        ctl.start_stream_scene()
        assert ctl.wait_connected(30) and ctl.wait_idle(30)
        assert _key_colour(obs_server) == obs_colour(KEY_COLOURS["green"])
        _move(obs_server, "Game5", 700.0, 250.0, 0.25)
        ctl.set_keyed(blue)
        assert ctl.wait_idle(30)
        assert _key_colour(obs_server) == obs_colour(KEY_COLOURS["blue"])
        assert _items(obs_server, "Game5").count("AvatarCam (keyed)") == 1
        assert _position(obs_server, "Game5") == (700.0, 250.0, 0.25)      # left where the user put it
        ctl.set_keyed(None)                                               # an avatar without a green screen
        assert ctl.wait_idle(30)
        assert "AvatarCam (keyed)" not in _items(obs_server, "Game5")
        assert not _ask(obs_server, _req().GetInputSettings(inputName="AvatarCam (keyed)")).status
        ctl.set_keyed(green)                                              # and back to a green-screen one
        assert ctl.wait_idle(30)
        assert _key_colour(obs_server) == obs_colour(KEY_COLOURS["green"])
        assert _position(obs_server, "Game5") == (700.0, 250.0, 0.25)
        ctl.restore()
        assert ctl.wait_idle(30)
        assert _items(obs_server, "Game5") == before
        assert not _ask(obs_server, _req().GetInputSettings(inputName="AvatarCam (keyed)")).status


def test_a_switch_while_obs_is_away_returns_at_once_and_is_applied_when_it_is_back(obs_factory, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="avatarcam")
    server = obs_factory().start()
    # "Scene" is the scene a fresh OBS profile starts with; a killed OBS saves nothing, so a scene made
    # by the test would be gone after the restart.
    with _keyed(server, "Scene", tmp_path) as ctl:
        ctl.start_stream_scene()
        assert ctl.wait_connected(30) and ctl.wait_idle(30)
        assert _key_colour(server) == obs_colour(KEY_COLOURS["green"])
        server.stop()
        deadline = time.monotonic() + 20
        while ctl.status == "connected" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ctl.status != "connected"
        t0 = time.monotonic()
        ctl.set_keyed(_source("Scene", tmp_path, key=KEY_COLOURS["magenta"]))
        assert time.monotonic() - t0 < 0.1                                # the caller never waits on OBS
        server.start()
        assert ctl.wait_connected(30) and ctl.wait_idle(30)
        assert _key_colour(server) == obs_colour(KEY_COLOURS["magenta"])
        assert _items(server, "Scene").count("AvatarCam (keyed)") == 1
    assert "AvatarCam (keyed)" not in _items(server, "Scene")
    lost = [r for r in caplog.records if "connection to OBS was lost" in r.getMessage()]
    assert len(lost) == 1


def test_switching_avatars_mid_stream_rekeys_obs_or_takes_the_source_out_and_stop_restores(
        obs_server, tmp_path, random_card, monkeypatch):
    """A real stream (random-weight card, a wav paced like a microphone) keyed into a real OBS scene."""
    import wave

    import numpy as np

    from avatarcam.config import Settings
    from avatarcam.session import Session
    from avatarcam.stream_options import SessionOptions
    from engine.toon import random_identity, render_portrait
    from engine.toon.creator import set_control, set_key

    monkeypatch.setenv("AVATARCAM_HOME", str(tmp_path / "home"))
    _scene(obs_server, "Switch")
    before = _items(obs_server, "Switch")
    wav = tmp_path / "voice.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((3000 * np.sin(np.arange(60 * 16000) * 0.08)).astype(np.int16).tobytes())
    s = Settings()
    s.camera.enabled, s.engine.device = False, "cpu"
    s.obs.enabled, s.obs.port, s.obs.password = True, obs_server.port, obs_server.password
    s.obs.scene, s.obs.source, s.obs.mic_input, s.obs.keyed = "Switch", "", "", True
    green = set_key(random_identity(1), "green")
    blue = set_key(set_control(random_identity(1), "shirt", (51, 51, 242)), "blue")   # a blue shirt on blue
    plain, plain2 = random_identity(1), random_identity(3)                             # no green screen
    assert plain.background != "chroma" and plain2.background != "chroma"
    session = Session(s, SessionOptions(model=str(random_card), avatar_image=render_portrait(green, 128),
                                        avatar_identity=green, audio_file=wav, realtime=True))
    warnings: list[str] = []
    session.on_event(lambda e: warnings.append(str(e.data)) if e.kind == "warning" else None)

    def switch(look):
        t0 = time.monotonic()
        session.switch_avatar(render_portrait(look, 128), look)
        assert time.monotonic() - t0 < 0.5                                # OBS is not waited for
        assert session._run.obs.wait_idle(30)

    session.start()
    try:
        obs = session._run.obs
        assert obs.wait_connected(30) and obs.wait_idle(30)
        assert _key_colour(obs_server) == obs_colour(KEY_COLOURS["green"]) and warnings == []
        _move(obs_server, "Switch", 640.0, 360.0, 0.5)

        switch(blue)
        assert _key_colour(obs_server) == obs_colour(KEY_COLOURS["blue"])
        assert _position(obs_server, "Switch") == (640.0, 360.0, 0.5)
        assert len(warnings) == 1 and "clothes" in warnings[0] and "blue screen" in warnings[0]

        switch(plain)
        assert "AvatarCam (keyed)" not in _items(obs_server, "Switch")
        assert len(warnings) == 2 and "no green-screen background" in warnings[1]
        switch(plain2)                                                    # still none: nothing new to say
        assert len(warnings) == 2 and "AvatarCam (keyed)" not in _items(obs_server, "Switch")

        switch(green)                                                     # back where the user put it
        assert _key_colour(obs_server) == obs_colour(KEY_COLOURS["green"])
        assert _position(obs_server, "Switch") == (640.0, 360.0, 0.5)
        frames = session.stats().frames_generated
        deadline = time.monotonic() + 30
        while session.stats().frames_generated <= frames + 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert session.stats().frames_generated > frames + 10 and session.running   # the stream went on
    finally:
        session.stop(30)
    assert not session.running and session.error is None
    assert _items(obs_server, "Switch") == before
    assert not _ask(obs_server, _req().GetInputSettings(inputName="AvatarCam (keyed)")).status
    assert len(warnings) == 2

"""The session with real parts: a PulseAudio microphone and OBS Studio over obs-websocket.

Both are real processes started by the fixtures (a private PulseAudio daemon with a pipe-source
microphone fed in real time; OBS 29 under Xvfb). The model is a small random card: the point here
is the plumbing (capture, pacing, latency, OBS control), not the picture.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from avatarcam.config import Settings
from avatarcam.session import Session
from avatarcam.stream_options import SessionOptions
from tests.fixtures_card import random_card  # noqa: F401
from tests.fixtures_obs import obs_factory, obs_server, xvfb_display  # noqa: F401
from tests.fixtures_pulse import chirp, mic_feeder, ncc_max, pulse  # noqa: F401

SR = 16000


def avatar() -> np.ndarray:
    img = np.zeros((96, 96, 3), np.uint8)
    img[24:72, 24:72] = (240, 200, 160)
    return img


def mp4_audio(path) -> np.ndarray:
    import av
    with av.open(str(path)) as c:
        chunks = [f.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])]
    return np.concatenate(chunks).astype(np.float32)


def mp4_frames(path) -> int:
    import av
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def test_microphone_stream_captures_what_was_played_and_makes_frames(tmp_path, random_card, mic_feeder):
    s = Settings()
    s.camera.enabled = False
    s.audio.mic = "pulse"
    out = tmp_path / "mic.mp4"
    frames = []
    session = Session(s, SessionOptions(model=str(random_card), avatar_image=avatar(), record=out, preview=True,
                                        duration_s=4.0))
    session.on_event(lambda e: frames.append(1) if e.kind == "frame" else None)
    session.start()
    time.sleep(0.8)                      # the pipe source needs a moment before audio flows
    voice = chirp(1.5)
    mic_feeder.say(voice)
    assert session.wait(30)
    assert session.error is None
    stats = session.stats()
    # ~4 s at 25 fps: a frame for every 40 ms, or audio the engine said it dropped (a loaded machine
    # falls behind real time, and a live stream drops audio rather than lag)
    assert stats.frames_generated >= 10
    assert stats.frames_generated + round(stats.dropped_audio_s * 25) >= 90
    assert len(frames) > stats.frames_generated // 2    # paced frames reached the preview
    assert stats.latency_s is not None and 0.1 < stats.latency_s < 3.0
    captured = mp4_audio(out)                           # the mic audio as the session recorded it
    score, _ = ncc_max(captured, voice)
    assert score > 0.9
    assert mp4_frames(out) == stats.frames_generated


def test_obs_scene_switch_sync_offset_and_restore(tmp_path, random_card, obs_server):
    ws = obs_server.client()
    from obswebsocket import requests as R
    ws.call(R.CreateScene(sceneName="AvatarCam"))
    ws.call(R.SetCurrentProgramScene(sceneName="Scene"))
    wav = tmp_path / "voice.wav"
    _write_wav(wav, chirp(3.0))
    ws.call(R.CreateInput(sceneName="Scene", inputName="Mic/Aux", inputKind="ffmpeg_source",
                          inputSettings={"local_file": str(wav), "looping": True}, sceneItemEnabled=True))
    s = Settings()
    s.camera.enabled = False
    s.obs.enabled, s.obs.host, s.obs.port, s.obs.password = True, "127.0.0.1", obs_server.port, obs_server.password
    s.obs.scene, s.obs.source, s.obs.mic_input = "AvatarCam", "", "Mic/Aux"
    session = Session(s, SessionOptions(model=str(random_card), avatar_image=avatar(), audio_file=wav,
                                        realtime=True, preview=True))
    session.start()
    deadline = time.monotonic() + 10
    scene = None
    while time.monotonic() < deadline:
        scene = ws.call(R.GetCurrentProgramScene()).getCurrentProgramSceneName()
        offset = ws.call(R.GetInputAudioSyncOffset(inputName="Mic/Aux")).getInputAudioSyncOffset()
        if scene == "AvatarCam" and offset > 0:
            break
        time.sleep(0.2)
    assert scene == "AvatarCam"
    live_latency = session.stats().latency_s
    assert offset > 0 and live_latency is not None
    assert abs(offset - live_latency * 1000) < 400      # the measured latency, in ms (it keeps moving a little)
    assert session.wait(30)
    assert ws.call(R.GetCurrentProgramScene()).getCurrentProgramSceneName() == "Scene"   # restored
    assert ws.call(R.GetInputAudioSyncOffset(inputName="Mic/Aux")).getInputAudioSyncOffset() == 0
    ws.disconnect()


def test_stream_survives_obs_being_killed(tmp_path, random_card, obs_factory):
    server = obs_factory().start()
    s = Settings()
    s.camera.enabled = False
    s.obs.enabled, s.obs.host, s.obs.port, s.obs.password = True, "127.0.0.1", server.port, server.password
    s.obs.scene, s.obs.source, s.obs.mic_input = "", "", ""
    wav = tmp_path / "voice.wav"
    _write_wav(wav, chirp(3.0))
    out = tmp_path / "kept.mp4"
    session = Session(s, SessionOptions(model=str(random_card), avatar_image=avatar(), audio_file=wav,
                                        realtime=True, record=out))
    session.start()
    time.sleep(1.0)
    server.proc.kill()                                   # OBS crashes mid-stream
    server.proc.wait()
    assert session.wait(30)
    assert session.error is None
    stats = session.stats()
    assert mp4_frames(out) == stats.frames_generated > 0    # every frame written, file intact
    # the 3 s clip: every 40 ms a frame, or audio the engine said it dropped
    assert abs(stats.frames_generated + round(stats.dropped_audio_s * 25) - 76) <= 1
    assert stats.obs_status != "connected"


def _write_wav(path, pcm) -> None:
    import wave
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())

"""The live session end to end on a small random model: files, pacing, camera boundary, faults."""
from __future__ import annotations

import time
import wave

import numpy as np
import pytest

from avatarcam.config import Settings
from avatarcam.errors import ConfigError, ModelError
from avatarcam.session import Session
from avatarcam.stream_options import SessionOptions
from tests.fixtures_card import random_card  # noqa: F401
from tests.fixtures_vcam import recording_camera  # noqa: F401

SR = 16000


def write_wav(path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())


def tone(seconds: float, click_at: float | None = None) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    if click_at is not None:
        i = int(click_at * SR)
        x[i:i + 40] = 0.9
    return x.astype(np.float32)


def avatar(size=96) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[:, :, 0] = 200
    img[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = (240, 200, 160)
    return img


def settings_no_devices() -> Settings:
    s = Settings()
    s.camera.enabled = False
    s.obs.enabled = False
    return s


def read_mp4(path):
    import av
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(a))
        rate = a.rate
    return frames, samples / rate


def test_audio_file_to_mp4_has_every_frame_and_the_audio(tmp_path, random_card):
    wav = tmp_path / "voice.wav"
    write_wav(wav, tone(2.0))
    out = tmp_path / "demo.mp4"
    session = Session(settings_no_devices(), SessionOptions(model=str(random_card), avatar_image=avatar(),
                                                            audio_file=wav, record=out))
    session.start()
    assert session.wait(120)
    assert session.error is None
    frames, audio_s = read_mp4(out)
    assert frames == 50                     # 2 s at 25 fps, whole blocks of 2 frames
    assert abs(audio_s - 2.0) < 0.1
    stats = session.stats()
    assert stats.state == "stopped" and stats.frames_generated == 50
    assert stats.step_ms_p50 > 0


def test_duration_limits_a_file_run(tmp_path, random_card):
    wav = tmp_path / "voice.wav"
    write_wav(wav, tone(3.0))
    out = tmp_path / "short.mp4"
    session = Session(settings_no_devices(), SessionOptions(model=str(random_card), avatar_image=avatar(),
                                                            audio_file=wav, record=out, duration_s=1.0))
    session.start()
    assert session.wait(120)
    frames, audio_s = read_mp4(out)
    assert frames == 26 and abs(audio_s - 1.0) < 0.1   # 25 frames, rounded up to a whole block


def test_realtime_stream_to_camera_is_paced_and_measures_latency(tmp_path, random_card, recording_camera):
    """The camera is pyvirtualcam's real Camera over a recording backend (no v4l2loopback here)."""
    s = settings_no_devices()
    s.camera.enabled, s.camera.backend, s.camera.width, s.camera.height = True, "recording", 160, 120
    wav = tmp_path / "voice.wav"
    write_wav(wav, tone(3.0))
    session = Session(s, SessionOptions(model=str(random_card), avatar_image=avatar(), audio_file=wav,
                                        realtime=True))
    t0 = time.monotonic()
    session.start()
    assert session.wait(60)
    wall = time.monotonic() - t0
    assert session.error is None
    cam = recording_camera.instances[-1]
    assert cam.closed and cam.frames and (cam.width, cam.height) == (160, 120)
    assert cam.frames[0].size == 120 * 160 * 3
    stats = session.stats()
    assert wall >= 2.5                          # paced like a microphone, not as fast as possible
    assert stats.latency_s is not None
    assert stats.latency_s >= 2 * 4 / 25 * 0.5   # at least the look-ahead of the window (order of magnitude)
    assert stats.frames_shown >= stats.frames_generated - stats.dropped_frames


def test_sink_failure_mid_stream_does_not_stop_the_recording(tmp_path, random_card, recording_camera):
    s = settings_no_devices()
    s.camera.enabled, s.camera.backend, s.camera.width, s.camera.height = True, "recording", 64, 64
    calls = {"n": 0}
    original = recording_camera.send

    def flaky(self, frame):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("camera unplugged")
        original(self, frame)
    recording_camera.send = flaky
    wav = tmp_path / "voice.wav"
    write_wav(wav, tone(1.5))
    out = tmp_path / "rec.mp4"
    session = Session(s, SessionOptions(model=str(random_card), avatar_image=avatar(), audio_file=wav,
                                        record=out, realtime=True))
    session.start()
    assert session.wait(60)
    assert session.error is None
    stats = session.stats()
    assert stats.sink_errors == 1
    frames, _ = read_mp4(out)
    # every frame the engine made is in the file, long after the camera failed on its 5th; on a busy
    # machine the real-time engine skips audio it cannot keep up with, so that count may be < 38
    assert frames == stats.frames_generated and frames > 20


def test_switching_avatar_while_streaming_changes_the_output(tmp_path, random_card):
    seen = []
    wav = tmp_path / "voice.wav"
    write_wav(wav, tone(2.0))
    session = Session(settings_no_devices(), SessionOptions(model=str(random_card), avatar_image=avatar(),
                                                            audio_file=wav, realtime=True, preview=True))
    session.on_event(lambda e: seen.append(e.data) if e.kind == "frame" else None)
    session.start()
    time.sleep(1.0)
    other = np.full((96, 96, 3), 30, np.uint8)
    session.switch_avatar(other)
    assert session.wait(60)
    assert session.error is None
    assert len(seen) > 20
    assert (session.reference == 30).all()          # the engine restarted on the new avatar
    assert session.stream.sampler.ref.shape[0] == 1


def test_missing_model_is_a_model_error(tmp_path):
    session = Session(settings_no_devices(), SessionOptions(model=str(tmp_path / "nope"), avatar_image=avatar()))
    with pytest.raises(ModelError, match="not found"):
        session.start()
    assert session.state == "error"


def test_missing_audio_file_is_a_config_error(tmp_path, random_card):
    session = Session(settings_no_devices(), SessionOptions(model=str(random_card), avatar_image=avatar(),
                                                            audio_file=tmp_path / "missing.wav"))
    with pytest.raises(ConfigError, match="not found"):
        session.start()


def test_bad_anchor_setting_is_explained(tmp_path, random_card):
    session = Session(settings_no_devices(), SessionOptions(model=str(random_card), avatar_image=avatar(),
                                                            stream_overrides={"passes": 0}))
    with pytest.raises(ModelError, match="passes"):
        session.start()


def test_click_in_the_input_lands_at_its_frame_in_the_mp4(tmp_path, random_card):
    wav = tmp_path / "click.wav"
    pcm = np.zeros(int(2.0 * SR), np.float32)
    pcm[int(1.2 * SR): int(1.2 * SR) + 80] = 0.9          # a click at 1.200 s = frame 30 at 25 fps
    write_wav(wav, pcm)
    out = tmp_path / "click.mp4"
    session = Session(settings_no_devices(), SessionOptions(model=str(random_card), avatar_image=avatar(),
                                                            audio_file=wav, record=out))
    session.start()
    assert session.wait(60)
    import av
    with av.open(str(out)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])])
        rate = c.streams.audio[0].rate
    with av.open(str(out)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(c.streams.video[0])]
    click_s = np.argmax(np.abs(audio)) / rate
    frame_of_click = int(np.searchsorted(times, click_s, side="right") - 1)
    assert frame_of_click == 30


def test_mute_feeds_the_engine_silence(tmp_path, random_card):
    wav = tmp_path / "voice.wav"
    write_wav(wav, tone(1.0))
    out = tmp_path / "muted.mp4"
    session = Session(settings_no_devices(), SessionOptions(model=str(random_card), avatar_image=avatar(),
                                                            audio_file=wav, record=out))
    fed = []
    session.mute(True)
    session.start()
    original = session.stream.push_audio
    session.stream.push_audio = lambda pcm: (fed.append(np.abs(pcm).max()), original(pcm))[1]
    assert session.wait(60)
    assert session.muted and fed and max(fed) == 0.0


def test_engine_slower_than_real_time_drops_audio_and_keeps_latency_bounded(tmp_path, random_card, monkeypatch):
    """Half-speed engine on a live-paced input: audio is dropped, the measured lag stays near the backlog cap
    (it used to climb by every dropped block: 28 s after 10 minutes on a busy machine)."""
    from engine.sampler import StreamingSampler
    from avatarcam.capture import AUDIO_BACKLOG_S

    original = StreamingSampler.step

    def half_speed(self, audio):        # every stream (plain or pipelined) steps here; a 2-frame block is 80 ms
        time.sleep(0.16)
        return original(self, audio)

    monkeypatch.setattr(StreamingSampler, "step", half_speed)
    wav = tmp_path / "voice.wav"
    write_wav(wav, tone(5.0))
    session = Session(settings_no_devices(), SessionOptions(model=str(random_card), avatar_image=avatar(),
                                                            audio_file=wav, realtime=True, preview=True))
    session.start()
    assert session.wait(60)
    assert session.error is None
    stats = session.stats()
    assert stats.dropped_audio_blocks > 10
    assert stats.latency_s is not None
    assert stats.latency_s < AUDIO_BACKLOG_S + 1.0, stats.latency_s

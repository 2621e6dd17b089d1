"""Sinks: real pyvirtualcam ``Camera`` in front of a recording backend (no camera device can exist on
this machine; see tests/fixtures_vcam.py), real mp4 files written and read back with PyAV."""
from __future__ import annotations

import glob
import platform
import sys

import numpy as np
import pytest

from avatarcam.errors import DeviceError
from avatarcam.sinks import FanoutSink, NullSink, VideoFile, VirtualCamera, no_camera_message
from tests.camera_frames import native_to_rgb
from tests.fixtures_vcam import recording_camera  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(60)


def _test_frame(h: int = 72, w: int = 128, seed: int = 0) -> np.ndarray:
    """Flat colour patches (8x8): chroma subsampling keeps them exact, so round trips can be compared."""
    rng = np.random.default_rng(seed)
    patches = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(patches, 8, 0), 8, 1)


# ------------------------------------------------------------------------------------ virtual camera

def test_virtual_camera_delivers_rgb_frames_and_names_its_device(recording_camera):
    frames = [_test_frame(seed=i) for i in range(3)]
    with VirtualCamera(128, 72, 30, backend="recording", device="/dev/video42") as cam:
        for f in frames:
            cam.send(f)
        assert cam.device == "/dev/video42" and cam.fmt == "RGB"
    backend = recording_camera.instances[-1]
    assert backend.closed and backend.fmt == "RGB"
    got = [native_to_rgb(x, "RGB", 128, 72) for x in backend.frames]
    assert all(np.array_equal(g, f) for g, f in zip(got, frames)) and len(got) == 3


@pytest.mark.parametrize("native", ["NV12", "UYVY", "I420", "YUYV", "BGR"])
def test_virtual_camera_sends_in_the_backends_native_format(recording_camera, native):
    recording_camera.native = native
    frame = _test_frame()
    with VirtualCamera(128, 72, 30, backend="recording") as cam:
        cam.send(frame)
        assert cam.fmt == native
    backend = recording_camera.instances[-1]
    assert backend.fmt == native
    back = native_to_rgb(backend.frames[0], native, 128, 72).astype(int)
    assert np.abs(back - frame.astype(int)).max() <= 3  # YUV rounding only


def test_virtual_camera_letterboxes_frames_of_another_size(recording_camera):
    frame = np.full((240, 240, 3), 200, np.uint8)  # square into 16:9
    with VirtualCamera(320, 180, 30, backend="recording") as cam:
        cam.send(frame)
    out = native_to_rgb(recording_camera.instances[-1].frames[0], "RGB", 320, 180)
    assert out.shape == (180, 320, 3)
    assert (out[:, :60] == 0).all() and (out[:, -60:] == 0).all()  # black bars left and right
    assert (out[:, 75:245] == 200).all()


def test_virtual_camera_mirror_flips_left_and_right(recording_camera):
    frame = _test_frame()
    with VirtualCamera(128, 72, 30, backend="recording", mirror=True) as cam:
        cam.send(frame)
    out = native_to_rgb(recording_camera.instances[-1].frames[0], "RGB", 128, 72)
    assert np.array_equal(out, frame[:, ::-1])


def test_virtual_camera_uses_1280x720_on_macos(recording_camera, monkeypatch):
    """backend=None: pyvirtualcam tries its real backends first (none work here), then ours."""
    monkeypatch.setattr(sys, "platform", "darwin")
    with VirtualCamera(640, 480, 30) as cam:
        cam.send(_test_frame())
        assert (cam.width, cam.height) == (1280, 720)
    assert recording_camera.instances[-1].width == 1280


@pytest.mark.skipif(platform.system() != "Linux" or bool(glob.glob("/dev/video*")),
                    reason="needs a Linux host without a v4l2loopback device")
def test_missing_v4l2loopback_is_one_clear_error_with_the_modprobe_line():
    with pytest.raises(DeviceError) as e:
        VirtualCamera(640, 480, 30).open()
    msg = str(e.value)
    assert "modprobe v4l2loopback" in msg and "exclusive_caps=1" in msg
    assert msg.count("No virtual camera") == 1


def test_windows_message_says_obs_holds_the_camera_when_pyvirtualcam_reports_it():
    msg = no_camera_message("Windows", "'obs' backend: virtual camera output could not be started")
    assert "held by OBS" in msg


def test_windows_and_macos_messages_say_to_install_and_start_the_obs_camera_once():
    win = no_camera_message("Windows", "'obs' backend: OBS Virtual Camera device not found! Did you install OBS?")
    mac = no_camera_message("Darwin", "'obs' backend: OBS Virtual Camera is not installed")
    for msg in (win, mac):
        assert "install OBS Studio" in msg and "Start Virtual Camera" in msg


# ------------------------------------------------------------------------------------- video file

def _read_back(path):
    import av

    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio
        info = {"fps": float(v.average_rate), "duration": c.duration / 1e6, "has_audio": bool(a),
                "size": (v.codec_context.width, v.codec_context.height)}
        frames = [(float(f.time), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    chunks = []
    if info["has_audio"]:
        with av.open(str(path)) as c:
            chunks = [(float(f.time), f.to_ndarray().reshape(-1)) for f in c.decode(audio=0)]
    start = chunks[0][0] if chunks else 0.0
    audio = np.concatenate([x for _, x in chunks]) if chunks else np.zeros(0)
    return info, frames, start, audio


def _clip_with_click(n_frames: int, fps: int, k: int, sr: int = 16000) -> np.ndarray:
    audio = (0.01 * np.sin(np.arange(int(n_frames / fps * sr)) * 0.05)).astype(np.float32)
    s0 = int(round(k / fps * sr))
    audio[s0:s0 + 40] = 0.9
    return audio


def _bright(n_frames: int, k: int, h: int = 96, w: int = 128):
    for i in range(n_frames):
        yield np.full((h, w, 3), 250 if i == k else 30, np.uint8)


def test_video_file_has_the_frames_fps_duration_and_an_audio_stream(tmp_path):
    path = tmp_path / "out.mp4"
    fps, n = 25, 40
    with VideoFile(path, 128, 96, fps, audio=_clip_with_click(n, fps, 10)) as out:
        for f in _bright(n, 10):
            out.send(f)
    info, frames, _, audio = _read_back(path)
    assert len(frames) == n and info["fps"] == fps and info["has_audio"]
    assert info["size"] == (128, 96)
    assert abs(info["duration"] - n / fps) < 0.1
    assert abs(len(audio) / 16000 - n / fps) < 0.1


def test_video_file_audio_click_lines_up_with_the_bright_frame(tmp_path):
    path = tmp_path / "sync.mp4"
    fps, n, k = 25, 50, 31
    with VideoFile(path, 128, 96, fps, audio=_clip_with_click(n, fps, k)) as out:
        for f in _bright(n, k):
            out.send(f)
    _, frames, start, audio = _read_back(path)
    t_frame = max(frames, key=lambda x: x[1].mean())[0]
    t_click = start + int(np.argmax(np.abs(audio))) / 16000
    assert t_frame == pytest.approx(k / fps, abs=1e-6)
    assert abs(t_click - t_frame) < 1 / fps


def test_video_file_live_audio_blocks_stay_in_sync_with_frames(tmp_path):
    path = tmp_path / "live.mp4"
    fps, n, k = 25, 50, 17
    clip = _clip_with_click(n, fps, k)
    per_frame = 16000 // fps
    with VideoFile(path, 128, 96, fps) as out:
        for i, f in enumerate(_bright(n, k)):
            out.send_audio(clip[i * per_frame:(i + 1) * per_frame])
            out.send(f)
    _, frames, start, audio = _read_back(path)
    t_frame = max(frames, key=lambda x: x[1].mean())[0]
    t_click = start + int(np.argmax(np.abs(audio))) / 16000
    assert abs(t_click - t_frame) < 1 / fps


def test_video_file_error_leaves_no_file_behind(tmp_path):
    path = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="engine died"):
        with VideoFile(path, 128, 96, 25) as out:
            for f in _bright(5, 2):
                out.send(f)
            assert not path.exists()  # still under its temporary name
            raise RuntimeError("engine died")
    assert list(tmp_path.iterdir()) == []


def test_video_file_appears_only_on_close(tmp_path):
    path = tmp_path / "late.mp4"
    out = VideoFile(path, 128, 96, 25).open()
    out.send(np.zeros((96, 128, 3), np.uint8))
    assert not path.exists() and len(list(tmp_path.iterdir())) == 1
    out.close()
    assert path.exists() and list(tmp_path.iterdir()) == [path]


# ----------------------------------------------------------------------------------- fan-out, null

class FailingSink(NullSink):
    """A real sink that breaks after a few frames (as a camera that vanished would)."""

    name = "failing"

    def __init__(self, fail_at: int):
        super().__init__()
        self.fail_at = fail_at
        self.aborted = False

    def send(self, frame):
        if self.frames_sent == self.fail_at:
            raise OSError("device unplugged")
        super().send(frame)

    def abort(self):
        self.aborted = True


def test_fanout_drops_a_failing_sink_and_keeps_feeding_the_others(tmp_path, caplog):
    bad, good = FailingSink(fail_at=3), NullSink()
    path = tmp_path / "kept.mp4"
    with FanoutSink([bad, good, VideoFile(path, 64, 48, 25)]) as fan:
        with caplog.at_level("ERROR", logger="avatarcam.sinks"):
            for f in _bright(10, 4, 48, 64):
                fan.send(f)
        assert bad not in fan.active and len(fan.active) == 2
    assert good.frames_sent == 10 and bad.frames_sent == 3 and bad.aborted
    assert fan.failures == {"failing": "OSError: device unplugged"} and fan.errors == 1
    assert "failing failed and was dropped" in caplog.text
    assert len(_read_back(path)[1]) == 10


def test_fanout_open_failure_closes_the_sinks_already_open(tmp_path):
    path = tmp_path / "never.mp4"
    with pytest.raises(DeviceError):
        FanoutSink([VideoFile(path, 64, 48, 25), VirtualCamera(64, 48, 25, backend="no-such-backend")]).open()
    assert list(tmp_path.iterdir()) == []


def test_null_sink_counts_frames_and_rejects_non_rgb_arrays():
    with NullSink() as s:
        s.send(np.zeros((4, 4, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8 HxWx3"):
            s.send(np.zeros((4, 4), np.float32))
    assert s.frames_sent == 1


def test_a_green_screen_avatars_letterbox_bars_take_its_key_colour(recording_camera):
    """A square avatar on a 16:9 camera: the bars are the key colour, so OBS keys them away too."""
    square = np.zeros((72, 72, 3), np.uint8)
    square[:] = (0, 255, 0)
    with VirtualCamera(128, 72, 30, backend="recording", pad=(0, 255, 0)) as cam:
        cam.send(square)
        cam.pad = (0, 0, 0)          # the user switched to an avatar without a green screen
        cam.send(square)
    keyed, plain = (native_to_rgb(x, "RGB", 128, 72) for x in recording_camera.instances[-1].frames)
    assert tuple(keyed[36, 2]) == (0, 255, 0) and tuple(keyed[36, 125]) == (0, 255, 0)
    assert tuple(plain[36, 2]) == (0, 0, 0)

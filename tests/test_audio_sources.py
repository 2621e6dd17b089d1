"""Audio sources against real parts: a private PulseAudio daemon with a pipe-source microphone fed in
real time (PortAudio reaches it through ALSA's ``pulse`` device), and real files decoded by PyAV."""
from __future__ import annotations

import shutil
import subprocess
import time
import wave

import numpy as np
import pytest

from avatarcam.audio import (FileSource, MicSource, list_input_devices, list_output_devices,
                             refresh_devices, resolve_device)
from avatarcam.errors import ConfigError, DeviceError
from avatarcam.resample import PolyphaseResampler, resample
from engine.config import SAMPLE_RATE
from tests.fixtures_pulse import chirp, mic_feeder, ncc_max, pulse  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(60)


def _speech(tmp_path) -> np.ndarray:
    """A spoken sentence from espeak-ng (a chirp where espeak-ng is missing), 16 kHz float32."""
    if not shutil.which("espeak-ng"):
        return chirp(1.5)
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "testing the avatar microphone"], check=True, timeout=30)
    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    return resample(pcm, rate, SAMPLE_RATE)


def _capture(src: MicSource, feeder, ref: np.ndarray) -> np.ndarray:
    """Wait for the stream to flow, play ``ref`` into the virtual mic, return everything captured."""
    got = []
    t0 = time.monotonic()
    while sum(map(len, got)) < 0.3 * SAMPLE_RATE:
        assert time.monotonic() - t0 < 10, "no audio from the virtual microphone"
        block = src.read(0.5)
        if block is not None:
            got.append(block)
    feeder.say(ref)
    while feeder.busy():
        got.append(src.read(1.0))
    for _ in range(15):
        got.append(src.read(1.0))
    return np.concatenate([b for b in got if b is not None])


def test_mic_captures_what_is_played_into_the_virtual_microphone(pulse, mic_feeder, tmp_path):
    ref = _speech(tmp_path)
    with MicSource(device="pulse", block_ms=20) as src:
        cap = _capture(src, mic_feeder, ref)
        assert src.faults == 0
    score, _ = ncc_max(cap, ref)
    assert score > 0.95


def test_mic_blocks_are_float32_mono_at_16khz_of_block_ms(pulse, mic_feeder):
    with MicSource(device="pulse", block_ms=30) as src:
        blocks = [b for b, _ in zip(src, range(10))]
    assert {b.shape for b in blocks} == {(480,)}
    assert {b.dtype for b in blocks} == {np.dtype(np.float32)}


def test_mic_resamples_when_the_device_runs_at_48khz(pulse, mic_feeder):
    ref = chirp(1.0)
    with MicSource(device="pulse", device_rate=48000) as src:
        cap = _capture(src, mic_feeder, ref)
        assert src.device_rate == 48000
    score, _ = ncc_max(cap, ref)
    assert score > 0.95


def test_mic_keeps_yielding_silence_and_reports_when_the_sound_server_dies(pulse, mic_feeder):
    with MicSource(device="pulse", stall_s=0.5) as src:
        for _ in range(10):
            assert src.read(2.0) is not None
        pulse.kill()
        t0 = time.monotonic()
        blocks = [src.read(1.0) for _ in range(50)]
        elapsed = time.monotonic() - t0
        assert src.faulted and src.faults == 1 and src.last_error
    assert all(b is not None and b.shape == (src.block_size,) for b in blocks)
    assert np.abs(np.concatenate(blocks[-25:])).max() == 0.0
    assert 0.5 < elapsed < 3.0  # paced like a live mic (50 x 20 ms), not a busy loop, not stuck


def test_mic_recovers_when_the_sound_server_comes_back(pulse, tmp_path):
    from tests.fixtures_pulse import FifoFeeder
    feeder = FifoFeeder(pulse.fifo)
    feeder.start()
    try:
        with MicSource(device="pulse", stall_s=0.5, retry_s=(0.1, 0.5)) as src:
            assert src.read(5.0) is not None
            pulse.kill()
            feeder.stop()
            for _ in range(20):
                src.read(1.0)
            assert src.faulted
            pulse.start()
            feeder = FifoFeeder(pulse.fifo)
            feeder.start()
            t0 = time.monotonic()
            while src.faulted and time.monotonic() - t0 < 10:
                src.read(1.0)
            assert not src.faulted and src.recoveries == 1
            ref = chirp(0.5)
            cap = _capture(src, feeder, ref)
        assert ncc_max(cap, ref)[0] > 0.95
    finally:
        feeder.stop()


def test_mic_that_never_delivers_frames_yields_silence_and_closes_promptly(pulse):
    """No feeder: the pipe-source produces nothing (the case where PortAudio's close can hang)."""
    t0 = time.monotonic()
    with MicSource(device="pulse", first_frame_s=0.5, close_timeout_s=1.0) as src:
        blocks = [src.read(1.0) for _ in range(20)]
        assert src.faults >= 1
    assert all(b is not None and not b.any() for b in blocks)
    assert time.monotonic() - t0 < 8


def test_unknown_microphone_raises_device_error_listing_available_devices(pulse):
    with pytest.raises(DeviceError) as e:
        MicSource(device="No Such Mic").open()
    msg = str(e.value)
    assert "Microphone 'No Such Mic' not found" in msg and "pulse" in msg and "avatarcam devices" in msg


def test_device_lists_show_the_pulse_devices_with_a_default(pulse):
    inputs, outputs = list_input_devices(), list_output_devices()
    assert "pulse" in {d.name for d in inputs} and "pulse" in {d.name for d in outputs}
    assert sum(d.is_default for d in inputs) == 1
    assert all(d.channels > 0 and d.default_rate > 0 for d in inputs)
    assert resolve_device("puls", "input").name == "pulse"


def test_device_lists_are_empty_with_a_hint_when_no_sound_server(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/nothing-here")
    refresh_devices()
    try:
        with caplog.at_level("WARNING", logger="avatarcam.audio"):
            assert list_input_devices() == []
        assert "no audio devices" in caplog.text
    finally:
        monkeypatch.undo()
        refresh_devices()


def test_resampler_streams_block_by_block_like_the_whole_clip():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(44100).astype(np.float32)
    whole = PolyphaseResampler(44100, 16000).process(x)
    r = PolyphaseResampler(44100, 16000)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 3000))
        parts.append(r.process(x[i:i + n]))
        i += n
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
    held_back = 16000 - len(whole)  # outputs wait for the filter's look-ahead (latency_s)
    assert 0 <= held_back <= int(np.ceil(r.latency_s * 16000)) + 1


def test_resampler_keeps_a_tone_and_removes_what_cannot_be_represented():
    t = np.arange(48000) / 48000
    tone = resample(np.sin(2 * np.pi * 1000 * t), 48000, 16000)
    expect = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    assert len(tone) == 16000
    assert np.abs(tone[200:-200] - expect[200:-200]).max() < 1e-3
    alias = resample(np.sin(2 * np.pi * 12000 * t), 48000, 16000)  # above the 8 kHz Nyquist
    assert np.sqrt(np.mean(alias[200:-200] ** 2)) < 1e-3


# ---------------------------------------------------------------- files ------------------------------

def _write_file(path, pcm: np.ndarray, rate: int, channels: int = 1) -> None:
    """Encode with PyAV (wav/flac/mp3/m4a chosen by suffix)."""
    import av
    codec = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".m4a": "aac"}[path.suffix]
    data = np.repeat(pcm[None, :], channels, 0).astype(np.float32)
    with av.open(str(path), "w") as out:
        st = out.add_stream(codec, rate=rate, layout="mono" if channels == 1 else "stereo")
        if codec in ("libmp3lame", "aac"):
            st.bit_rate = 192000
        fmt = st.codec_context.codec.audio_formats[0].name
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=st.layout.name)
        frame.sample_rate = rate
        rs = av.AudioResampler(format=fmt, layout=st.layout.name, rate=rate,
                               frame_size=st.codec_context.frame_size or None)
        done = 0
        for f in rs.resample(frame) + rs.resample(None):
            f.pts, done = done, done + f.samples  # explicit timestamps: the muxer then records AAC priming
            for p in st.encode(f):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".m4a"])
def test_file_source_decodes_downmixes_and_resamples_to_16k(tmp_path, suffix):
    ref44 = chirp(1.0, sr=44100)
    path = tmp_path / f"clip{suffix}"
    _write_file(path, ref44, 44100, channels=2)
    pcm = FileSource(path, realtime=False).pcm
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert abs(len(pcm) - SAMPLE_RATE) < 0.1 * SAMPLE_RATE  # codecs pad a little
    score, _ = ncc_max(pcm, chirp(1.0))
    assert score > 0.95


def test_file_source_fast_mode_yields_the_whole_clip_in_blocks(tmp_path):
    path = tmp_path / "clip.wav"
    _write_file(path, chirp(2.0, sr=SAMPLE_RATE), SAMPLE_RATE)
    t0 = time.monotonic()
    with FileSource(path, realtime=False) as src:
        blocks = list(src)
    assert time.monotonic() - t0 < 0.5
    assert len(blocks) == 100 and all(len(b) == 320 for b in blocks)
    np.testing.assert_allclose(np.concatenate(blocks)[:len(src.pcm)], src.pcm)


def test_file_source_realtime_mode_paces_blocks_like_a_microphone(tmp_path):
    path = tmp_path / "clip.wav"
    _write_file(path, chirp(0.6, sr=SAMPLE_RATE), SAMPLE_RATE)
    t0 = time.monotonic()
    with FileSource(path, realtime=True) as src:
        n = sum(1 for _ in src)
    elapsed = time.monotonic() - t0
    assert n == 30
    assert 0.5 < elapsed < 0.9


def test_file_source_loops_when_asked(tmp_path):
    path = tmp_path / "clip.wav"
    _write_file(path, chirp(0.1, sr=SAMPLE_RATE), SAMPLE_RATE)
    with FileSource(path, realtime=False, loop=True) as src:
        blocks = [src.read() for _ in range(25)]  # 0.5 s from a 0.1 s clip
    audio = np.concatenate(blocks)
    np.testing.assert_allclose(audio[1600:3200], src.pcm[:1600], atol=1e-6)
    assert not src.ended


def test_missing_audio_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        FileSource(tmp_path / "nope.wav").open()


def test_non_audio_file_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"this is not audio" * 100)
    with pytest.raises(ConfigError, match="bad.mp3"):
        FileSource(bad).open()


def test_mic_counts_and_logs_overflows_when_the_reader_falls_behind(pulse, mic_feeder, caplog):
    with MicSource(device="pulse", buffer_s=0.1) as src:
        assert src.read(5.0) is not None
        time.sleep(0.6)  # the reader stalls; the 0.1 s ring buffer must drop the oldest audio
        with caplog.at_level("WARNING", logger="avatarcam.audio"):
            block = src.read(1.0)
        assert block is not None and src.overflows > 0 and src.faults == 0
    assert "overflow" in caplog.text

"""The noise gate: quiet blocks (typing, a fan) reach the engine as silence, speech passes whole, and
the delayed voice the meeting hears is never gated. Real file source and the real capture thread."""
from __future__ import annotations

import threading
import wave

import numpy as np

from avatarcam.audio import FileSource
from avatarcam.capture import END, Capture
from avatarcam.noise_gate import NoiseGate
from avatarcam.stats import SessionStats

SR = 16000


def _wav(path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(SR)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype(np.int16).tobytes())


class _Heard:
    """Stands in for the delayed-mic output (a sound device this machine does not have): it keeps what it is given."""

    def __init__(self):
        self.blocks = []

    def push(self, block, _t):
        self.blocks.append(block.copy())


def _run(tmp_path, gate):
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    clicks = rng.normal(0, 0.003, SR)                  # about -50 dBFS: keyboard and fan
    speech = 0.3 * np.sin(2 * np.pi * 200 * t)         # about -13 dBFS
    _wav(tmp_path / "a.wav", np.concatenate([clicks, speech, clicks]))
    source = FileSource(tmp_path / "a.wav", realtime=False)
    source.open()
    heard = _Heard()
    cap = Capture(source, SessionStats(), live=False, pace_file=False, delayed_mic=heard, gate=gate)
    cap.run(threading.Event())
    source.close()
    blocks = []
    while (item := cap.audio_q.get_nowait()) is not END:
        blocks.append(item[1])
    return np.concatenate(blocks), np.concatenate(heard.blocks)


def test_quiet_noise_becomes_silence_and_speech_passes(tmp_path):
    engine, meeting = _run(tmp_path, NoiseGate(-35.0, hold_s=0.1))
    assert np.all(engine[: SR] == 0)                                   # typing before speech: silence
    assert np.array_equal(engine[SR: 2 * SR], meeting[SR: 2 * SR])      # speech: untouched
    assert np.all(engine[int(2.2 * SR): 3 * SR] == 0)                  # after the hold: silence again
    assert np.abs(meeting[: SR]).max() > 0                              # the meeting still hears the room


def test_without_a_gate_the_engine_hears_everything(tmp_path):
    engine, meeting = _run(tmp_path, None)
    assert np.array_equal(engine, meeting)


def test_the_threshold_moves_while_streaming(tmp_path):
    _wav(tmp_path / "b.wav", np.zeros(SR))
    cap = Capture(FileSource(tmp_path / "b.wav"), SessionStats(), live=True, pace_file=False)
    assert cap.gate is None
    cap.set_gate(-40.0)
    assert cap.gate.threshold_db == -40.0
    cap.set_gate(-20.0)
    assert cap.gate.threshold_db == -20.0
    cap.set_gate(None)
    assert cap.gate is None

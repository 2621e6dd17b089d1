"""Make synthetic speech sound like it reached a real microphone: voice changes and the channel.

Why: synthesisers speak with clean, level, close-miked audio; people speak faster or slower,
higher or lower, through longer or shorter vocal tracts, in rooms, into cheap microphones and
codecs, quietly or into clipping. Two stages, both deterministic for given parameters:

* `change_voice` (per utterance, before mixing): speed, pitch and vocal-tract length. Rubber Band
  (through pedalboard) stretches time and shifts pitch with the formants held; the vocal tract is
  scaled by resampling first (which moves formants and pitch together) and putting the pitch back.
  Speed is uniform, so phoneme times scale by 1/speed.
* `apply_microphone` (on the mixed clip: the room and the microphone hear everything): room reverb,
  EQ (band limits, shelves, a resonance), a speech codec, and drive into a clipper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.clips.speech import resample
from engine.config import SAMPLE_RATE


@dataclass(frozen=True)
class VoiceChange:
    """speed > 1 talks faster; pitch in semitones; formant > 1 a shorter vocal tract (higher formants)."""

    speed: float = 1.0
    pitch: float = 0.0
    formant: float = 1.0

    @property
    def identity(self) -> bool:
        return self.speed == 1.0 and self.pitch == 0.0 and self.formant == 1.0


@dataclass(frozen=True)
class Microphone:
    """The room and the device: every field's neutral value means "not applied"."""

    highpass_hz: float = 0.0
    lowpass_hz: float = 0.0
    low_shelf_db: float = 0.0
    high_shelf_db: float = 0.0
    peak_hz: float = 1000.0
    peak_db: float = 0.0
    room_size: float = 0.0        # reverb: 0 dry .. 1 a hall
    wet: float = 0.0              # reverb wet level (0..1)
    damping: float = 0.5
    codec: str = ""               # "", "gsm" (phone line) or "mp3" (low-bitrate stream)
    drive_db: float = 0.0         # gain into a hard clipper at full scale (a shout into a hot mic)


def change_voice(audio: np.ndarray, change: VoiceChange, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The utterance spoken `change.speed` times faster, pitch and vocal tract moved; float32."""
    if change.identity or audio.size == 0:
        return audio.astype(np.float32)
    from pedalboard import time_stretch
    x = audio.astype(np.float32)
    if change.formant != 1.0:
        x = resample(x, sr, int(round(sr / change.formant)))
    semis = change.pitch - 12.0 * math.log2(change.formant)
    y = time_stretch(x[None], float(sr), stretch_factor=change.speed / change.formant,
                     pitch_shift_in_semitones=semis, preserve_formants=True)[0]
    want = int(round(audio.size / change.speed))
    y = y[:want] if y.size >= want else np.concatenate([y, np.zeros(want - y.size, np.float32)])
    return y.astype(np.float32)


def apply_microphone(audio: np.ndarray, mic: Microphone, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The clip as the microphone records it (same length, float32)."""
    import pedalboard as pb
    chain: list = []
    if mic.room_size > 0 and mic.wet > 0:
        chain.append(pb.Reverb(room_size=mic.room_size, damping=mic.damping, wet_level=mic.wet,
                               dry_level=1.0 - 0.5 * mic.wet, width=0.0))
    if mic.highpass_hz > 0:
        chain.append(pb.HighpassFilter(mic.highpass_hz))
    if mic.lowpass_hz > 0:
        chain.append(pb.LowpassFilter(mic.lowpass_hz))
    if mic.low_shelf_db:
        chain.append(pb.LowShelfFilter(cutoff_frequency_hz=250.0, gain_db=mic.low_shelf_db))
    if mic.high_shelf_db:
        chain.append(pb.HighShelfFilter(cutoff_frequency_hz=3000.0, gain_db=mic.high_shelf_db))
    if mic.peak_db:
        chain.append(pb.PeakFilter(cutoff_frequency_hz=mic.peak_hz, gain_db=mic.peak_db, q=1.2))
    if mic.codec == "gsm":
        chain.append(pb.GSMFullRateCompressor())
    elif mic.codec == "mp3":
        chain.append(pb.MP3Compressor(vbr_quality=8.0))
    elif mic.codec:
        raise ValueError(f"unknown codec {mic.codec!r}; known: gsm, mp3")
    x = audio.astype(np.float32)
    if chain:
        x = pb.Pedalboard(chain)(x[None], float(sr), reset=True)[0]
    if mic.drive_db:
        x = np.clip(x * 10 ** (mic.drive_db / 20), -1.0, 1.0)
    n = audio.size
    x = x[:n] if x.size >= n else np.concatenate([x, np.zeros(n - x.size, np.float32)])
    return x.astype(np.float32)


def random_voice_change(rng: np.random.Generator, speed: tuple[float, float], pitch: tuple[float, float],
                        formant: tuple[float, float]) -> VoiceChange:
    """Speed and formant drawn log-uniformly, pitch uniformly (semitones)."""
    def logu(lo_hi):
        return float(np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]))))
    return VoiceChange(speed=round(logu(speed), 4), pitch=round(float(rng.uniform(*pitch)), 3),
                       formant=round(logu(formant), 4))


def random_microphone(rng: np.random.Generator, reverb: float, codec: float, clipping: float) -> Microphone:
    """A random device and room; `reverb`, `codec`, `clipping` are the chances of each."""
    wet = float(rng.uniform(0.1, 0.5)) if rng.random() < reverb else 0.0
    return Microphone(
        highpass_hz=float(rng.choice([0.0, 60.0, 120.0, 250.0, 400.0])),
        lowpass_hz=float(rng.choice([0.0, 0.0, 3400.0, 4500.0, 6000.0])),
        low_shelf_db=float(rng.uniform(-8, 6)), high_shelf_db=float(rng.uniform(-12, 8)),
        peak_hz=float(np.exp(rng.uniform(np.log(300), np.log(5000)))), peak_db=float(rng.uniform(-6, 9)),
        room_size=float(rng.uniform(0.2, 0.9)) if wet else 0.0, wet=wet, damping=float(rng.uniform(0.2, 0.8)),
        codec=str(rng.choice(["gsm", "mp3"])) if rng.random() < codec else "",
        drive_db=float(rng.uniform(3, 14)) if rng.random() < clipping else 0.0)

"""A clip's soundtrack: who speaks, through which voice change, over and between which sounds,
into which microphone — all drawn from one generator, so a clip stays a pure function of its seed.

Why a separate recipe (`ClipAudio`, the recipe's `data.audio`): the mouth target only follows the
phonemes, so everything else a microphone hears (music, clicks, coughs, noise, a room, a codec)
is mixed in here with the mouth left shut, and the mix is tuned without touching the renderer.
Non-speech is levelled by "loudness" (the 90th percentile of 20 ms RMS), so a keyboard or a tone
at speech loudness really is as loud as the speech it competes with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine.clips import sounds
from engine.clips.mic import (Microphone, VoiceChange, apply_microphone, change_voice, random_microphone,
                                   random_voice_change)
from engine.clips.speech import Utterance
from engine.clips.visemes import is_silence
from engine.clips.voices import FAMILIES, Voice, random_voice, speak
from engine.config import SAMPLE_RATE

Span = tuple[float, float]


@dataclass
class ClipAudio:
    """How training audio is made; chances are per clip, levels in dB, ranges (low, high)."""

    families: dict = field(default_factory=lambda: {"espeak": 0.4, "flite": 0.3, "festival": 0.3})
    voice_change: float = 0.6           # chance of a speed/pitch/vocal-tract change
    speed: Span = (0.8, 1.25)
    pitch: Span = (-4.0, 4.0)           # semitones
    formant: Span = (0.87, 1.15)        # vocal-tract scale
    microphone: float = 0.7             # chance of a coloured microphone (EQ, maybe room, codec, clipping)
    reverb: float = 0.35                # ... of which with a room
    codec: float = 0.15
    clipping: float = 0.1
    level_dbfs: Span = (-42.0, -1.0)    # speech peak: whisper to shout
    noise_floor_dbfs: Span = (-80.0, -45.0)
    bed: float = 0.45                   # chance of one sound under the whole clip
    bed_db: Span = (-30.0, -3.0)        # its loudness relative to the speech
    events: float = 0.6                 # chance of non-speech sounds in the pauses (and sometimes over speech)
    event_db: Span = (-9.0, 6.0)        # their loudness relative to the speech: speech loudness
    no_speech: float = 0.08             # clips with sounds only (the mouth stays shut throughout)
    held_out: bool = False              # speak with the voices kept out of training (the evaluation's)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.families) - set(FAMILIES))
        if unknown or not self.families or sum(self.families.values()) <= 0:
            raise ValueError(f"data.audio.families must weight some of {list(FAMILIES)}, got {self.families}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (list, tuple)):
                if len(v) != 2 or v[0] > v[1]:
                    raise ValueError(f"data.audio.{f.name} must be [low, high] with low <= high, got {v}")
                setattr(self, f.name, (float(v[0]), float(v[1])))
            elif f.name not in ("families", "held_out") and not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"data.audio.{f.name} is a chance and must be in 0..1, got {v}")

    def tag(self) -> str:
        """A short stable name of these settings (cache file names)."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def clip_audio(settings: dict | None) -> ClipAudio | None:
    """The recipe's `data.audio` mapping as a ClipAudio; empty: None (espeak-only clips, format 1)."""
    if not settings:
        return None
    known = {f.name for f in dataclasses.fields(ClipAudio)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown data.audio settings {unknown}; allowed: {sorted(known)}")
    return ClipAudio(**settings)


@dataclass
class Scene:
    """The mixed 16 kHz audio and what is in it."""

    audio: np.ndarray
    voice: Voice
    change: VoiceChange
    microphone: Microphone
    texts: list[str]
    phonemes: list[tuple[float, str]]           # (second, espeak mnemonic)
    sounds: list[tuple[str, float, float, str]]  # (kind, start s, end s, "bed" | "event")


def loudness(x: np.ndarray) -> float:
    """90th percentile of 20 ms RMS: how loud the loud parts are (not diluted by pauses)."""
    hop = SAMPLE_RATE // 50
    n = x.size // hop
    if n == 0:
        return 0.0
    return float(np.percentile(np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(1)), 90))


def _pick(rng: np.random.Generator, weights: dict) -> str:
    names = sorted(weights)
    p = np.array([float(weights[k]) for k in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def draw_texts(rng: np.random.Generator, sentence: Callable[[np.random.Generator], str], seconds: float,
               words_per_s: float) -> list[str]:
    """Sentences until their estimated speaking time (with pauses) covers the clip with a margin."""
    texts, est = [], 0.0
    while est < seconds * 1.1:
        texts.append(sentence(rng))
        est += len(texts[-1].split()) / words_per_s + 0.8
    return texts


def lay_out(rng: np.random.Generator, utterances: list[Utterance], n: int, change: VoiceChange = VoiceChange()
            ) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Utterances one after another from a random start, with pauses (some long), cut to n samples.

    Returns the audio and the (clip second, phoneme) list, each utterance closed by a silence.
    """
    out = np.zeros(n, np.float32)
    duration = n / SAMPLE_RATE
    phonemes: list[tuple[float, str]] = []
    t = float(rng.uniform(0.05, 1.0))  # leading silence
    for u in utterances:
        a = int(t * SAMPLE_RATE)
        if a >= n:
            break
        audio = change_voice(u.audio, change)
        seg = audio[: n - a]
        out[a:a + seg.size] += seg
        phonemes += [(t + pt / change.speed, ph) for pt, ph in u.phonemes if t + pt / change.speed < duration]
        phonemes.append((t + audio.size / SAMPLE_RATE, "_"))
        t += audio.size / SAMPLE_RATE + float(rng.uniform(0.15, 1.2))
        if rng.random() < 0.2:
            t += float(rng.uniform(1.0, 2.5))  # a longer silent stretch
    return out, [p for p in phonemes if p[0] < duration]


def _speech(rng: np.random.Generator, cfg: ClipAudio, n: int, sentence: Callable[[np.random.Generator], str],
            seed: int) -> tuple[np.ndarray, Voice, VoiceChange, list[str], list[tuple[float, str]]]:
    voice = random_voice(rng, _pick(rng, cfg.families), held_out=cfg.held_out)
    change = (random_voice_change(rng, cfg.speed, cfg.pitch, cfg.formant) if rng.random() < cfg.voice_change
              else VoiceChange())
    if rng.random() < cfg.no_speech:
        return np.zeros(n, np.float32), voice, change, [], []
    texts = draw_texts(rng, sentence, n / SAMPLE_RATE, voice.rate / 60.0 * change.speed)
    audio, phonemes = lay_out(rng, speak(texts, voice, seed=seed), n, change)
    return audio, voice, change, texts, phonemes


def pauses(phonemes: list[tuple[float, str]], duration: float, min_s: float = 0.3) -> list[Span]:
    """Stretches of at least `min_s` where no phoneme is spoken (the whole clip when there are none)."""
    out, start = [], 0.0
    for i, (t, ph) in enumerate(phonemes):
        if is_silence(ph):
            continue
        if t - start >= min_s:
            out.append((start, t))
        end = phonemes[i + 1][0] if i + 1 < len(phonemes) else duration
        start = max(start, end)
    if duration - start >= min_s:
        out.append((start, duration))
    return out


def _place(mix: np.ndarray, x: np.ndarray, start: int, level: float) -> None:
    """Add x at `level` loudness (its peak kept under full scale: sparse clicks have tall peaks)."""
    gain = min(level / max(loudness(x), 1e-9), 0.9 / max(float(np.abs(x).max()), 1e-9))
    x = x[: max(0, mix.size - start)]
    mix[start:start + x.size] += gain * x


def _sounds(rng: np.random.Generator, cfg: ClipAudio, n: int, ref: float, phonemes: list[tuple[float, str]]
            ) -> tuple[np.ndarray, list[tuple[str, float, float, str]]]:
    """The non-speech layer: maybe a bed under everything, maybe events in the pauses (and over speech)."""
    layer = np.zeros(n, np.float32)
    placed: list[tuple[str, float, float, str]] = []
    duration = n / SAMPLE_RATE
    if rng.random() < cfg.bed:
        kind = str(rng.choice(sounds.BED_KINDS))
        x = sounds.make_sound(kind, rng, duration)
        _place(layer, x, 0, ref * 10 ** (rng.uniform(*cfg.bed_db) / 20))
        placed.append((kind, 0.0, duration, "bed"))
    if rng.random() < cfg.events:
        spans = pauses(phonemes, duration)
        if rng.random() < 0.25:              # now and then one lands over the speech too
            a = float(rng.uniform(0, duration))
            spans.append((a, min(duration, a + float(rng.uniform(0.3, 1.5)))))
        for a, b in spans:
            if rng.random() < 0.3:
                continue
            kind = str(rng.choice(sorted(sounds.KINDS)))
            length = float(rng.uniform(0.3, 1.0)) * (b - a)
            start = a + float(rng.uniform(0, (b - a) - length))
            x = sounds.make_sound(kind, rng, length)
            _place(layer, x, int(start * SAMPLE_RATE), ref * 10 ** (rng.uniform(*cfg.event_db) / 20))
            placed.append((kind, round(start, 4), round(start + length, 4), "event"))
    return layer, placed


def compose(rng: np.random.Generator, cfg: ClipAudio, n_samples: int, sentence: Callable[[np.random.Generator], str],
            seed: int) -> Scene:
    """Speech (if any) at a level from whisper to shout, sounds around it, the microphone, a noise floor."""
    speech, voice, change, texts, phonemes = _speech(rng, cfg, n_samples, sentence, seed)
    peak = 10 ** (rng.uniform(*cfg.level_dbfs) / 20)
    top = float(np.abs(speech).max())
    if top > 0:
        speech *= peak / top
    ref = loudness(speech) if top > 0 else peak * 0.25     # speech loudness (or what it would have been)
    layer, placed = _sounds(rng, cfg, n_samples, ref, phonemes)
    mix = speech + layer
    mic = random_microphone(rng, cfg.reverb, cfg.codec, cfg.clipping) if rng.random() < cfg.microphone else Microphone()
    mix = apply_microphone(mix, mic)
    mix += rng.standard_normal(n_samples).astype(np.float32) * float(10 ** (rng.uniform(*cfg.noise_floor_dbfs) / 20))
    return Scene(np.clip(mix, -1.0, 1.0).astype(np.float32), voice, change, mic, texts, phonemes, placed)

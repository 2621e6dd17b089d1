"""One clip per seed (for training, or held out for the evaluation): an identity, 16 kHz speech, and
per-video-frame FaceControls.

Why generate instead of store: a clip is a pure function of its seed (identity, text, voice,
pauses, noise, blinks, head motion all come from one numpy Generator, and espeak-ng runs in a
fresh process so its audio is bit-exact), so training can draw new clips forever and any clip
can be rebuilt for debugging. An optional on-disk cache skips the synthesis on re-use.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine.clips.scene import ClipAudio, compose, draw_texts, lay_out
from engine.clips.speech import VoiceSpec, random_voice, synthesize
from engine.clips.visemes import TRACK_RATE, frame_means, gauss_smooth, mouth_track
from engine.clips.voices import Voice
from engine.config import SAMPLE_RATE
from engine.files import atomic_write
from engine.toon.identity import Identity, random_identity
from engine.toon.render import CONTROL_NAMES, FaceControls, render_frame

logger = logging.getLogger(__name__)

CLIP_VERSION = 1

_WORDS = (
    "the a my your our this that every some one two three many little big happy quiet bright warm cold "
    "green blue red yellow purple orange silver golden funny lovely gentle brave clever busy sleepy "
    "cat dog bird fish horse rabbit turtle friend teacher doctor baker farmer painter sailor robot "
    "house garden river mountain forest city kitchen window table chair pencil letter story song "
    "morning evening summer winter weekend holiday picture coffee music bicycle rocket island castle "
    "apple banana cookie sandwich pizza soup cheese lemon tomato potato carrot water tea juice "
    "runs walks jumps sings reads writes draws paints cooks bakes builds finds opens closes watches "
    "likes loves wants needs brings carries shows tells asks answers remembers forgets visits follows "
    "quickly slowly softly loudly happily really always never often sometimes today tomorrow yesterday "
    "here there again together outside inside under over near behind around through before after "
    "and but because so while when if then also very quite just only maybe perhaps of course "
    "hello thanks please sorry yes no okay wonderful amazing beautiful interesting important possible "
    "zoo moon spoon blue shoe choose food room smooth boot cool school moose goose noodle "
    "peak cheese tree see free sheep street sweet green keep teeth leaf easy eager "
    "map bob mama papa baby bubble pebble maple puppy bump mop mum pop bamboo ribbon marble"
).split()
_CLOSERS = (".", ".", ".", "?", "!", "...")


def random_sentence(rng: np.random.Generator) -> str:
    """A few random words with commas and end punctuation: enough prosody variety for lips."""
    n = int(rng.integers(3, 13))
    words = [_WORDS[int(i)] for i in rng.integers(0, len(_WORDS), n)]
    for k in range(1, n - 1):
        if rng.random() < 0.12:
            words[k] += ","
    words[0] = words[0].capitalize()
    return " ".join(words) + _CLOSERS[int(rng.integers(len(_CLOSERS)))]


@dataclass
class Clip:
    """Audio (float32, 16 kHz mono) and controls (n_frames, len(CONTROL_NAMES)) of one seed."""

    seed: int
    fps: float
    audio: np.ndarray
    controls: np.ndarray
    identity: Identity
    voice: VoiceSpec | Voice      # VoiceSpec: an espeak-only clip (no data.audio); Voice: any family
    texts: list[str] = field(default_factory=list)
    phonemes: list[tuple[float, str]] = field(default_factory=list)  # (clip second, mnemonic)
    sounds: list[tuple[str, float, float, str]] = field(default_factory=list)  # non-speech (kind, start, end, role)
    sample_rate: int = SAMPLE_RATE

    @property
    def n_frames(self) -> int:
        return int(self.controls.shape[0])

    def controls_at(self, j: int) -> FaceControls:
        return FaceControls.from_array(self.controls[j])

    def render(self, size: int = 256) -> np.ndarray:
        """All frames, uint8 (n_frames, size, size, 3)."""
        return np.stack([render_frame(self.identity, self.controls_at(j), size) for j in range(self.n_frames)])


def _blink_track(rng: np.random.Generator, n: int) -> np.ndarray:
    """Blinks at random (every ~1.5-6 s): 60 ms closing, 40 ms shut, 110 ms opening."""
    track = np.zeros(n, np.float32)
    prof = np.concatenate([np.linspace(0, 1, 12), np.ones(8), np.linspace(1, 0, 22)]).astype(np.float32)
    t = float(rng.uniform(0.2, 3.0))
    while t * TRACK_RATE < n:
        a = int(t * TRACK_RATE)
        seg = prof[: max(0, min(len(prof), n - a))]
        track[a:a + len(seg)] = np.maximum(track[a:a + len(seg)], seg)
        t += float(rng.uniform(1.5, 6.0))
    return track


def _head_tracks(rng: np.random.Generator, n: int, speaking: np.ndarray, mouth_open: np.ndarray) -> np.ndarray:
    """yaw/roll/nod: slow random sway plus syllable nods, scaled by a speaking envelope (still in silence)."""
    env = np.clip(gauss_smooth(speaking.astype(np.float32), 0.25) * 1.5, 0, 1)
    sway = gauss_smooth(rng.standard_normal((n, 3)).astype(np.float32), 0.45)
    sway /= sway.std(0, keepdims=True) + 1e-6
    amp = np.array([0.3, 0.18, 0.18], np.float32) * float(rng.uniform(0.5, 1.3))
    head = sway * amp
    beat = gauss_smooth(mouth_open, 0.06) - gauss_smooth(mouth_open, 0.4)
    head[:, 2] += 0.6 * beat
    return np.clip(head * env[:, None], -1, 1)


def _espeak_only(rng: np.random.Generator, seed: int, n_samples: int
                 ) -> tuple[np.ndarray, VoiceSpec, list[str], list[tuple[float, str]]]:
    """The original clip audio (format 1, no data.audio): one espeak voice, clean, a faint noise floor."""
    voice = random_voice(rng)
    texts = draw_texts(rng, random_sentence, n_samples / SAMPLE_RATE, voice.rate / 60.0)
    audio, phonemes = lay_out(rng, synthesize(texts, [voice] * len(texts), seed=seed), n_samples)

    peak = float(np.abs(audio).max()) or 1.0
    gain = float(np.exp(rng.uniform(np.log(0.1), np.log(0.9)))) / peak
    noise = rng.standard_normal(n_samples).astype(np.float32) * float(10 ** (rng.uniform(-75, -40) / 20))
    return (audio * gain + noise).astype(np.float32), voice, texts, phonemes


def _build(seed: int, fps: float, seconds: float, audio_cfg: ClipAudio | None = None) -> Clip:
    n_frames = int(round(seconds * fps))
    n_samples = int(round(n_frames * SAMPLE_RATE / fps))
    duration = n_samples / SAMPLE_RATE
    identity = random_identity(seed)
    placed: list[tuple[str, float, float, str]] = []
    if audio_cfg is None:
        rng = np.random.default_rng([seed, CLIP_VERSION])
        audio, voice, texts, phonemes = _espeak_only(rng, seed, n_samples)
    else:
        rng = np.random.default_rng([seed, CLIP_VERSION, 2])
        scene = compose(rng, audio_cfg, n_samples, random_sentence, seed)
        audio, voice, texts, phonemes, placed = scene.audio, scene.voice, scene.texts, scene.phonemes, scene.sounds

    mouth = mouth_track(phonemes, duration)
    mouth[:, 0] *= float(rng.uniform(0.8, 1.1))  # how much this speaker opens up
    n_track = len(mouth)
    speaking = (mouth[:, 0] > 0.02).astype(np.float32)
    blink = _blink_track(rng, n_track)
    head = _head_tracks(rng, n_track, speaking, mouth[:, 0])
    track = np.concatenate([mouth, blink[:, None], head], 1)  # order of CONTROL_NAMES
    controls = np.clip(frame_means(track, n_frames, fps), [0, 0, 0, 0, -1, -1, -1], [1, 1, 1, 1, 1, 1, 1]).astype(np.float32)
    assert controls.shape[1] == len(CONTROL_NAMES)
    return Clip(seed=seed, fps=fps, audio=audio, controls=controls, identity=identity, voice=voice,
                texts=texts, phonemes=phonemes, sounds=placed)


def _save_npz(tmp: str, **arrays: np.ndarray) -> None:
    """Through a file object: given a name, np.savez would append ".npz" and miss the temp file."""
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _cache_path(cache_dir: Path, seed: int, fps: float, seconds: float, audio_cfg: ClipAudio | None) -> Path:
    mix = f"-a{audio_cfg.tag()}" if audio_cfg is not None else ""
    return Path(cache_dir) / f"toonclip-v{CLIP_VERSION}{mix}-s{seed}-fps{fps:g}-len{seconds:g}.npz"


def _voice_from(meta: dict) -> VoiceSpec | Voice:
    return Voice(**meta["voice"]) if "family" in meta["voice"] else VoiceSpec(**meta["voice"])


def make_clip(seed: int, fps: float = 25, seconds: float = 8.0, cache_dir: str | os.PathLike | None = None,
              audio: ClipAudio | None = None) -> Clip:
    """The clip of `seed` (deterministic: same seed, fps, length and `audio` -> same audio bytes and controls).

    `audio` None: espeak-only clean speech (what the first shipped card learned from); a ClipAudio:
    every synthesiser family, voice changes, microphones and non-speech sounds (engine.clips.scene).
    """
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"make_clip: seconds and fps must be > 0, got seconds={seconds}, fps={fps}")
    if cache_dir is not None:
        path = _cache_path(Path(cache_dir), seed, fps, seconds, audio)
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                return Clip(seed=seed, fps=fps, audio=z["audio"], controls=z["controls"], identity=random_identity(seed),
                            voice=_voice_from(meta), texts=meta["texts"],
                            phonemes=[(float(a), str(b)) for a, b in meta["phonemes"]],
                            sounds=[(str(k), float(a), float(b), str(r)) for k, a, b, r in meta.get("sounds", [])])
    clip = _build(seed, fps, seconds, audio)
    if cache_dir is not None:
        meta = json.dumps({"voice": asdict(clip.voice), "texts": clip.texts, "phonemes": clip.phonemes,
                           "sounds": clip.sounds})
        atomic_write(path, lambda tmp: _save_npz(tmp, audio=clip.audio, controls=clip.controls, meta=np.array(meta)))
    return clip

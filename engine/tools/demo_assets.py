"""Rebuild the bundled demo assets: a short espeak-ng voice clip and the default avatar portrait.

    python -m engine.tools.demo_assets --out avatarcam/data

Why a script: the files ship in the package, so they must be reproducible from code (same
text, voice and seed -> same bytes), not hand-made.
"""

from __future__ import annotations

import argparse
import logging
import wave
from pathlib import Path

import numpy as np
from PIL import Image

from engine.clips.speech import VoiceSpec, synthesize
from engine.config import SAMPLE_RATE
from engine.files import atomic_write
from engine.toon import random_identity, render_portrait

logger = logging.getLogger(__name__)

DEMO_TEXTS = (
    "Hi there! I am your new avatar, and I move my lips when you talk.",
    "Pick a face you like, press start, and say hello to your friends.",
)
DEMO_VOICE = VoiceSpec(voice="en-us", variant="f3", rate=150, pitch=58, pitch_range=60)
DEFAULT_AVATAR_SEED = 2


def demo_voice() -> np.ndarray:
    """~10 s of float32 16 kHz speech: lead-in, sentence, pause, sentence, tail."""
    utts = synthesize(list(DEMO_TEXTS), [DEMO_VOICE] * len(DEMO_TEXTS), seed=0)
    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    pause = np.zeros(int(0.9 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([gap, utts[0].audio, pause, utts[1].audio, gap])
    return (audio * (0.7 / max(1e-6, float(np.abs(audio).max())))).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    def write(tmp: str) -> None:
        with wave.open(tmp, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(np.round(np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    atomic_write(path, write, mode=0o644)  # shipped with the package: readable by all


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    args.out.mkdir(parents=True, exist_ok=True)
    audio = demo_voice()
    write_wav(args.out / "demo_voice.wav", audio)
    portrait = Image.fromarray(render_portrait(random_identity(DEFAULT_AVATAR_SEED), 512))  # the library and card size
    atomic_write(args.out / "default_avatar.png", lambda tmp: portrait.save(tmp, format="PNG"), mode=0o644)
    logger.info("wrote %s (%.1f s) and default_avatar.png", args.out / "demo_voice.wav", audio.size / SAMPLE_RATE)


if __name__ == "__main__":
    main()

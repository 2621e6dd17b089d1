"""Bundled assets (rebuilt by `python -m engine.tools.demo_assets --out avatarcam/data`)."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
DEMO_VOICE_WAV = DATA_DIR / "demo_voice.wav"  # ~10 s espeak-ng speech, 16 kHz mono int16
DEFAULT_AVATAR_PNG = DATA_DIR / "default_avatar.png"  # 512x512 toon portrait (identity seed 2)
DEFAULT_AVATAR_SEED = 2  # the library's Default avatar: this cartoon identity (DEFAULT_AVATAR_PNG is its picture)

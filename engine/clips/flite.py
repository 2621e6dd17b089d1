"""flite speech with the segment times flite prints itself (`-psdur`: each segment and its end).

Why the command line and not libflite: the Debian package ships the `flite` binary with its voices
built in, and one short process per utterance is bit-exact (flite has no random state), so a
clip stays a pure function of its seed. Segments come in flite's ARPAbet and are translated.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.clips.arpabet import starts_from_ends
from engine.clips.speech import Utterance, resample
from engine.config import SAMPLE_RATE

VOICES = ("kal", "kal16", "awb", "rms", "slt")


def parse_psdur(text: str) -> list[tuple[float, str]]:
    """flite's `-psdur` line ("pau:0.220 hh:0.295 ...") -> [(end second, ARPAbet)]."""
    out = []
    for item in text.split():
        name, sep, end = item.rpartition(":")
        if sep and name:
            try:
                out.append((float(end), name))
            except ValueError:
                continue
    return out


def speak_flite(text: str, voice: str, stretch: float = 1.0, timeout: float = 30.0) -> Utterance:
    """One utterance: 16 kHz float32 audio and (start second, espeak mnemonic) phonemes."""
    if voice not in VOICES:
        raise ValueError(f"flite has no built-in voice {voice!r}; known: {', '.join(VOICES)}")
    with tempfile.TemporaryDirectory(prefix="flite-") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.4f}", "-psdur", "-t", text,
               "-o", str(wav)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False, text=True)
        except FileNotFoundError as exc:
            raise RuntimeError("flite is not installed (apt-get install flite)") from exc
        if proc.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"flite failed ({proc.returncode}) for voice {voice}: {proc.stderr[-400:]}")
        audio, sr = sf.read(wav, dtype="float32")
    audio = resample(np.asarray(audio, np.float32), int(sr), SAMPLE_RATE)
    return Utterance(text=text, voice=voice, audio=audio, phonemes=starts_from_ends(parse_psdur(proc.stdout)))

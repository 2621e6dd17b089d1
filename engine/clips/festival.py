"""Festival speech with segment times written by festival itself (a Scheme script per batch).

Why a Scheme script: `utt.save.segs` writes every segment's end time as festival placed it in the
waveform it returns, so mouth targets line up without alignment. One process speaks a whole list
(festival takes ~0.3 s to start); its diphone and HTS voices are deterministic.
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

VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")


def parse_segs(text: str) -> list[tuple[float, str]]:
    """An xlabel .segs file ("#" then "end 100 name" lines) -> [(end second, ARPAbet)]."""
    body = text.split("#", 1)[1] if "#" in text else text
    out = []
    for line in body.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append((float(parts[0]), parts[2]))
    return out


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def speak_festival(texts: list[str], voice: str, stretch: float = 1.0, timeout: float = 120.0) -> list[Utterance]:
    """Each text spoken by one festival voice: 16 kHz float32 audio and (start, espeak mnemonic) phonemes."""
    if voice not in VOICES:
        raise ValueError(f"festival voice {voice!r} is not one this project installs; known: {', '.join(VOICES)}")
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        lines = [f"(voice_{voice})", f"(Parameter.set 'Duration_Stretch {stretch:.4f})"]
        for i, t in enumerate(texts):
            lines += [f"(set! utt (SynthText {_scheme_string(t)}))",
                      f'(utt.save.wave utt "{tmp}/{i}.wav" \'riff)', f'(utt.save.segs utt "{tmp}/{i}.segs")']
        script = Path(tmp) / "job.scm"
        script.write_text("\n".join(lines) + "\n")
        try:
            proc = subprocess.run(["festival", "--batch", str(script)], capture_output=True, timeout=timeout,
                                  check=False, text=True)
        except FileNotFoundError as exc:
            raise RuntimeError("festival is not installed (apt-get install festival festvox-kallpc16k)") from exc
        out = []
        for i, t in enumerate(texts):
            wav, segs = Path(tmp) / f"{i}.wav", Path(tmp) / f"{i}.segs"
            if not (wav.is_file() and segs.is_file()):
                raise RuntimeError(f"festival voice {voice} wrote no audio for {t!r} (is its festvox package "
                                   f"installed?): {(proc.stderr or proc.stdout)[-400:]}")
            audio, sr = sf.read(wav, dtype="float32")
            out.append(Utterance(text=t, voice=voice, audio=resample(np.asarray(audio, np.float32), int(sr), SAMPLE_RATE),
                                 phonemes=starts_from_ends(parse_segs(segs.read_text()))))
    return out

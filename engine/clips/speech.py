"""espeak-ng speech with phoneme start times reported by the synthesiser itself.

Why libespeak-ng through ctypes: its synth callback delivers espeakEVENT_PHONEME events with
the exact output sample where each phoneme starts, so mouth targets line up with the audio to
the sample (no forced alignment, no guessing from text). Why a fresh child process per batch of
utterances: libespeak-ng keeps state between calls (and uses libc rand()), so two identical
requests in one process give slightly different audio; a fresh process with srand() fixed is
bit-exact, which is what makes clips reproducible from their seed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import subprocess
import sys
from dataclasses import asdict, dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

_EV_LIST_TERMINATED, _EV_PHONEME = 0, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_P_RATE, _P_VOLUME, _P_PITCH, _P_RANGE, _P_WORDGAP = 1, 2, 3, 4, 7

VOICES = ("en-us", "en", "en-gb-x-gbcwmd", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
            "klatt3", "Annie", "Andy", "belinda", "benjamin", "david", "edward", "john", "linda", "max", "paul", "")


@dataclass(frozen=True)
class VoiceSpec:
    """How one utterance is spoken: espeak voice+variant and its prosody parameters."""

    voice: str = "en-us"
    variant: str = ""
    rate: int = 165  # words per minute
    pitch: int = 50  # 0..100
    pitch_range: int = 50  # 0..100
    word_gap: int = 0  # extra gap between words, units of 10 ms

    @property
    def name(self) -> str:
        return f"{self.voice}+{self.variant}" if self.variant else self.voice


@dataclass
class Utterance:
    """16 kHz float32 audio and the phonemes in it: (start second, espeak phoneme mnemonic)."""

    text: str
    voice: VoiceSpec
    audio: np.ndarray
    phonemes: list[tuple[float, str]] = field(default_factory=list)


def random_voice(rng: np.random.Generator) -> VoiceSpec:
    return VoiceSpec(
        voice=VOICES[int(rng.integers(len(VOICES)))],
        variant=VARIANTS[int(rng.integers(len(VARIANTS)))],
        rate=int(rng.integers(125, 215)),
        pitch=int(rng.integers(25, 80)),
        pitch_range=int(rng.integers(30, 90)),
        word_gap=int(rng.choice([0, 0, 0, 1, 2, 4])),
    )


# --- in the child process: the ctypes binding ----------------------------------------------


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def _synthesize_here(requests: list[dict], seed: int) -> list[tuple[np.ndarray, list[tuple[int, str]], int]]:
    """Run libespeak-ng in this process: [(int16 audio, [(start sample, phoneme)], sample rate)]."""
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    lib = ctypes.CDLL(name)
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS)
    if sr <= 0:
        raise RuntimeError("espeak_Initialize failed: is espeak-ng-data installed (apt-get install espeak-ng)?")
    chunks: list[np.ndarray] = []
    events: list[tuple[int, str]] = []

    def on_audio(wav, n, ev) -> int:
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while ev[i].type != _EV_LIST_TERMINATED:
            if ev[i].type == _EV_PHONEME:
                events.append((int(ev[i].sample), bytes(ev[i].id.string).split(b"\0")[0].decode("ascii", "replace")))
            i += 1
        return 0

    cb = _Callback(on_audio)
    lib.espeak_SetSynthCallback(cb)
    libc.srand(ctypes.c_uint(seed & 0xFFFFFFFF))
    out = []
    for req in requests:
        v = VoiceSpec(**req["voice"])
        if lib.espeak_SetVoiceByName(v.name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {v.name!r} (see `espeak-ng --voices`)")
        for p, val in ((_P_RATE, v.rate), (_P_PITCH, v.pitch), (_P_RANGE, v.pitch_range), (_P_WORDGAP, v.word_gap), (_P_VOLUME, 100)):
            lib.espeak_SetParameter(p, int(val), 0)
        chunks.clear()
        events.clear()
        text = req["text"].encode("utf-8")
        lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        out.append((audio, list(events), sr))
    return out


def _worker_main() -> None:
    """stdin: JSON {seed, requests}; stdout: one JSON header line, then raw int16 audio of each."""
    job = json.loads(sys.stdin.buffer.read())
    results = _synthesize_here(job["requests"], int(job["seed"]))
    header = [{"n": int(a.size), "sr": sr, "events": ev} for a, ev, sr in results]
    sys.stdout.buffer.write(json.dumps(header).encode() + b"\n")
    for a, _, _ in results:
        sys.stdout.buffer.write(a.astype("<i2").tobytes())
    sys.stdout.buffer.flush()


# --- in the caller: resampling and the public function -------------------------------------


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited FFT resampling (deterministic; fine for whole utterances of a few seconds)."""
    if sr_in == sr_out or x.size == 0:
        return x.astype(np.float32)
    n_out = int(round(x.size * sr_out / sr_in))
    spec = np.fft.rfft(x.astype(np.float64))
    keep = n_out // 2 + 1
    if keep <= spec.size:
        spec = spec[:keep]
    else:
        spec = np.concatenate([spec, np.zeros(keep - spec.size, spec.dtype)])
    y = np.fft.irfft(spec, n_out) * (n_out / x.size)
    return y.astype(np.float32)


def synthesize(texts: list[str], voices: list[VoiceSpec], seed: int = 0, timeout: float = 60.0) -> list[Utterance]:
    """Speak each text with its voice (one fresh espeak-ng process for the whole list)."""
    from engine.config import SAMPLE_RATE  # here: this file also runs alone (-I) as the worker

    if len(texts) != len(voices):
        raise ValueError(f"synthesize: {len(texts)} texts but {len(voices)} voices")
    job = {"seed": int(seed), "requests": [{"text": t, "voice": asdict(v)} for t, v in zip(texts, voices)]}
    proc = subprocess.run([sys.executable, "-I", __file__, "--worker"], input=json.dumps(job).encode(),
                          capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng worker failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-800:]}")
    head, _, body = proc.stdout.partition(b"\n")
    header = json.loads(head)
    out, pos = [], 0
    for t, v, h in zip(texts, voices, header):
        raw = np.frombuffer(body[pos:pos + 2 * h["n"]], dtype="<i2")
        pos += 2 * h["n"]
        sr = h["sr"]
        audio = resample(raw.astype(np.float32) / 32768.0, sr, SAMPLE_RATE)
        phonemes = [(s / sr, p) for s, p in h["events"]]
        out.append(Utterance(text=t, voice=v, audio=audio, phonemes=phonemes))
    return out


if __name__ == "__main__" and "--worker" in sys.argv:
    _worker_main()

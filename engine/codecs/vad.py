"""A voice-activity gate in front of the audio encoder: what is not speech reaches the model as silence.

Why: a second line of defence for sounds the model was not trained to ignore (music, game audio,
a keyboard). silero-vad ships its small recurrent model inside its pip package (no download) and
scores a 32 ms chunk in about a millisecond. The gate adds no latency: each chunk's score decides
the gain from the next sample on (so a word's first ~30-60 ms can be muted), a hang-over keeps
short pauses inside speech open, and short fades avoid clicks.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from engine.checkpoints import CheckpointError
from engine.config import SAMPLE_RATE

log = logging.getLogger(__name__)

CHUNK = 512          # samples silero-vad scores at a time at 16 kHz (SAMPLE_RATE)


@dataclass(frozen=True)
class GateConfig:
    """Open at `on` probability, close after `hangover_ms` below `off`; fades of `fade_ms`."""

    on: float = 0.5
    off: float = 0.35
    hangover_ms: float = 250.0
    fade_ms: float = 8.0


def load_vad_model() -> torch.nn.Module:
    """silero-vad's TorchScript model from its own package (never the network)."""
    try:
        from silero_vad import load_silero_vad
    except ImportError as exc:
        raise CheckpointError("audio.vad needs the silero-vad package: pip install silero-vad "
                              "(or turn it off: --set audio.vad=false)") from exc
    with warnings.catch_warnings():      # its loader uses APIs torch and importlib now call deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad()


class VoiceGate:
    """Wraps an audio encoder (push / flush / reset / dim / lookahead_ms) and gates its PCM."""

    def __init__(self, encoder, cfg: GateConfig = GateConfig(), model: torch.nn.Module | None = None):
        sr = getattr(encoder, "sample_rate", SAMPLE_RATE)
        if sr != SAMPLE_RATE:
            raise CheckpointError(f"audio.vad works on {SAMPLE_RATE} Hz audio; this model's encoder takes {sr} Hz")
        self.encoder = encoder
        self.cfg = cfg
        self.model = model if model is not None else load_vad_model()
        self._hang_chunks = max(1, int(round(cfg.hangover_ms / 1000 * SAMPLE_RATE / CHUNK)))
        self._step = 1.0 / max(1.0, cfg.fade_ms / 1000 * SAMPLE_RATE)
        self.reset_gate()

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def lookahead_ms(self) -> float:
        return getattr(self.encoder, "lookahead_ms", 0.0)

    def reset_gate(self) -> None:
        self.model.reset_states()
        self._pending = np.zeros(0, np.float32)
        self._open = False
        self._hang = 0
        self._gain = 0.0
        self.speech_chunks = 0
        self.chunks = 0

    def reset(self) -> None:
        self.encoder.reset()
        self.reset_gate()

    def push(self, pcm: np.ndarray):
        return self.encoder.push(self.gate(pcm))

    def flush(self):
        return self.encoder.flush()

    def _score(self, chunk: np.ndarray) -> None:
        with torch.no_grad():
            p = float(self.model(torch.from_numpy(chunk), SAMPLE_RATE).detach())
        self.chunks += 1
        if p >= self.cfg.on:
            self._open, self._hang = True, self._hang_chunks
        elif p < self.cfg.off and self._open:
            self._hang -= 1
            self._open = self._hang > 0
        self.speech_chunks += int(self._open)

    def gate(self, pcm: np.ndarray) -> np.ndarray:
        """The same samples times the gate's gain (0 = silence), scoring every completed chunk."""
        x = np.asarray(pcm, np.float32).reshape(-1)
        out = np.empty_like(x)
        pos = 0
        while pos < x.size:
            take = min(CHUNK - self._pending.size, x.size - pos)
            seg = x[pos:pos + take]
            target = 1.0 if self._open else 0.0
            direction = float(np.sign(target - self._gain))
            ramp = np.clip(self._gain + direction * self._step * np.arange(1, take + 1), 0.0, 1.0)
            out[pos:pos + take] = seg * ramp
            self._gain = float(ramp[-1])
            self._pending = np.concatenate([self._pending, seg])
            if self._pending.size == CHUNK:
                self._score(self._pending)
                self._pending = np.zeros(0, np.float32)
            pos += take
        return out

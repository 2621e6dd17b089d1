"""Log-mel audio features, one vector per video frame, identical offline and streaming.

Why: the toon model needs audio features without external weights (no wav2vec2), computed
causally so the live microphone path produces exactly what training saw. Layout (defaults:
16 kHz, 25 fps, 10 ms hop, 25 ms Hann window):

* mel frame k analyses samples [k*hop - pad, k*hop - pad + win) of the signal, with the signal
  taken as zeros before sample 0;
* video frame j covers samples [j*spf, (j+1)*spf) (spf = sr/fps = 640); its feature stacks the
  `context_frames` mel frames whose last one ends exactly `lookahead_ms` after the frame's end.
  So a frame's feature uses `lookahead_ms` (default 20 ms) of future audio and
  context_frames*hop + (win-hop) of past-and-present audio (default 95 ms ending at +20 ms);
* loudness is normalised by a running reference level: a peak follower over video frames
  (instant attack, slow release, never below `floor_dbfs`), so a quiet and a loud speaker look
  alike and the gain never depends on audio that has not arrived yet.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from engine.config import SAMPLE_RATE

DEFAULT_LOOKAHEAD_MS = 20.0  # future audio per frame's features (adds to the stream's latency)

logger = logging.getLogger(__name__)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft//2+1) triangular filters on the HTK mel scale, each summing to ~1."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, c, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[i] = np.clip(np.minimum(up, down), 0, None)
        fb[i] /= max(fb[i].sum(), 1e-9)
    return fb


class LogMelEncoder:
    """Per-video-frame log-mel features; `encode` (whole clip) == `push` (any chunking) + `flush`."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, fps: float = 25, n_mels: int = 32, context_frames: int = 8,
                 hop_ms: float = 10.0, win_ms: float = 25.0, lookahead_ms: float = DEFAULT_LOOKAHEAD_MS,
                 release_db_per_s: float = 8.0, floor_dbfs: float = -55.0, fmin: float = 60.0, fmax: float | None = None):
        spf = sample_rate / fps
        hop = sample_rate * hop_ms / 1000
        la = sample_rate * lookahead_ms / 1000
        if abs(spf - round(spf)) > 1e-9 or abs(hop - round(hop)) > 1e-9 or abs(la - round(la)) > 1e-9:
            raise ValueError(f"LogMelEncoder: sample_rate/fps ({spf}), hop ({hop}) and look-ahead ({la}) must be whole samples")
        self.sample_rate, self.fps = sample_rate, fps
        self.spf, self.hop, self.lookahead = int(round(spf)), int(round(hop)), int(round(la))
        if self.spf % self.hop != 0:
            raise ValueError(f"LogMelEncoder: samples per video frame ({self.spf}) must be a multiple of the hop ({self.hop})")
        if context_frames < 1 or n_mels < 1:
            raise ValueError(f"LogMelEncoder: need n_mels >= 1 and context_frames >= 1, got {n_mels}, {context_frames}")
        self.win = int(round(sample_rate * win_ms / 1000))
        self.n_fft = 1 << (self.win - 1).bit_length()
        self.n_mels, self.context_frames = n_mels, context_frames
        self.window = np.hanning(self.win + 2)[1:-1]
        self.fb = mel_filterbank(sample_rate, self.n_fft, n_mels, fmin, fmax or sample_rate / 2 * 0.95)
        self.release = release_db_per_s / fps * math.log(10) / 10  # ln-power units per video frame
        self.eps = 1e-10
        self.floor = self._level_of_white_noise(10 ** (floor_dbfs / 20))
        self.reset()

    @property
    def dim(self) -> int:
        return self.n_mels * self.context_frames

    @property
    def lookahead_ms(self) -> float:
        """Future audio (beyond the frame's own interval) that frame j's feature depends on."""
        return 1000.0 * self.lookahead / self.sample_rate

    # -- the pieces --------------------------------------------------------------------------
    def _last_mel_end(self, j: int) -> int:
        """Sample index (exclusive) where the last mel window of video frame j ends."""
        return (j + 1) * self.spf + self.lookahead

    def _log_mel(self, x: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """(len(starts), n_mels) log mel power of windows x[s:s+win] (x already zero-padded)."""
        idx = starts[:, None] + np.arange(self.win)[None, :]
        frames = x[idx] * self.window
        spec = np.fft.rfft(frames, n=self.n_fft, axis=1)
        power = spec.real**2 + spec.imag**2
        return np.log(np.einsum("fk,mk->fm", power, self.fb) + self.eps)

    def _level_of_white_noise(self, rms: float) -> float:
        rng = np.random.default_rng(0)
        x = rng.standard_normal(self.sample_rate) * rms
        starts = np.arange(0, x.size - self.win, self.hop)
        return float(np.log(np.exp(self._log_mel(x, starts)).mean()))

    def _features(self, mel: np.ndarray, first_frame: int, n: int, ref: float) -> tuple[np.ndarray, float]:
        """Stack + normalise n video frames; `mel` row r is mel frame (first needed of first_frame) + r."""
        per = self.spf // self.hop
        out = np.empty((n, self.dim), np.float32)
        for i in range(n):
            last = (i + 1) * per + (self.context_frames - per if self.context_frames > per else 0) - 1
            stack = mel[last - self.context_frames + 1:last + 1]
            own = mel[last - min(per, self.context_frames) + 1:last + 1]
            level = float(np.log(np.exp(own).mean()))
            ref = max(level, ref - self.release, self.floor)
            out[i] = (np.maximum(stack - ref, -12.0) + 6.0).reshape(-1) / 6.0
        return out, ref

    # -- offline ---------------------------------------------------------------------------------
    def _mel_starts(self, j0: int, n: int) -> np.ndarray:
        """Start samples (unpadded coordinates) of every mel window video frames j0..j0+n-1 need."""
        per = self.spf // self.hop
        last_start = self._last_mel_end(j0) - self.win
        first = last_start - (max(self.context_frames, per) - 1) * self.hop
        return first + self.hop * np.arange(max(self.context_frames, per) + (n - 1) * per)

    def encode(self, pcm: np.ndarray) -> torch.Tensor:
        """(n_frames, dim) for the whole clip; n_frames = len(pcm) // spf (the tail is zero-padded)."""
        x = self._as_mono(pcm)
        n = x.size // self.spf
        if n == 0:
            return torch.zeros(0, self.dim)
        starts = self._mel_starts(0, n)
        pad_l = max(0, -int(starts[0]))
        pad_r = max(0, int(starts[-1]) + self.win - x.size)
        xp = np.concatenate([np.zeros(pad_l), x, np.zeros(pad_r)])
        mel = self._log_mel(xp, starts + pad_l)
        feats, _ = self._features(mel, 0, n, self.floor)
        return torch.from_numpy(feats)

    # -- streaming -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new stream (the signal before its first sample counts as silence)."""
        self._buf = np.zeros(0)
        self._buf_start = 0  # absolute sample index of _buf[0]
        self._received = 0
        self._next_frame = 0
        self._ref = self.floor

    def push(self, pcm_chunk: np.ndarray) -> torch.Tensor:
        """Add audio; return features of every video frame whose audio (incl. look-ahead) is now in."""
        x = self._as_mono(pcm_chunk)
        self._buf = np.concatenate([self._buf, x])
        self._received += x.size
        n = 0
        while self._last_mel_end(self._next_frame + n) <= self._received:
            n += 1
        return self._emit(n)

    def flush(self) -> torch.Tensor:
        """End of stream: emit the frames still waiting for look-ahead, with zeros as the future."""
        n_total = self._received // self.spf
        n = max(0, n_total - self._next_frame)
        need = self._last_mel_end(self._next_frame + n - 1) - self._received if n else 0
        if need > 0:
            self._buf = np.concatenate([self._buf, np.zeros(need)])
        return self._emit(n)

    def _emit(self, n: int) -> torch.Tensor:
        if n == 0:
            return torch.zeros(0, self.dim)
        starts = self._mel_starts(self._next_frame, n)
        rel = starts - self._buf_start
        pad_l = max(0, -int(rel[0]))
        xp = np.concatenate([np.zeros(pad_l), self._buf]) if pad_l else self._buf
        mel = self._log_mel(xp, rel + pad_l)
        feats, self._ref = self._features(mel, self._next_frame, n, self._ref)
        self._next_frame += n
        keep_from = int(self._mel_starts(self._next_frame, 1)[0])  # first sample the next frame needs
        drop = max(0, keep_from - self._buf_start)
        self._buf = self._buf[drop:]
        self._buf_start += drop
        return torch.from_numpy(feats)

    @staticmethod
    def _as_mono(pcm: np.ndarray) -> np.ndarray:
        x = np.asarray(pcm)
        if x.ndim == 2 and 1 in x.shape:
            x = x.reshape(-1)
        if x.ndim != 1:
            raise ValueError(f"LogMelEncoder: expected mono PCM of shape (n,), got {x.shape}")
        if x.dtype == np.int16:
            return x.astype(np.float64) / 32768.0
        return x.astype(np.float64)

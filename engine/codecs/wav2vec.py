"""wav2vec2 audio features for the paper model, offline (the authors' exact recipe) and streaming.

The AvatarForcing 1.3B model was trained on features from ``wav2vec2-base-960h`` built this way
(reference spec §1.8.1): normalise the clip to zero mean and unit variance, run the conv feature
encoder (~50 Hz), interpolate it linearly (align_corners) to exactly one row per video frame
*before* the transformer encoder, and concatenate ``[last_hidden_state, hidden_states[0..L]]``:
(L + 2) · hidden = 14 · 768 = 10752 values per video frame.

That recipe is not causal: the normalisation, the GroupNorm of the first conv layer and the
encoder's attention all use the whole clip. ``push()`` therefore departs from it, on purpose:

* it re-encodes a sliding window of ``context_frames`` past frames plus ``lookahead_frames``
  future frames (the look-ahead adds ``lookahead_frames / fps`` seconds of latency);
* it normalises with running statistics of everything pushed since ``reset()`` instead of the
  whole clip's statistics.

With enough context the streamed rows are close to the offline ones; ``encode()`` stays exact.
Row slicing for the 4-frames-per-latent packing is ``rows_for_latent_frames``.
"""
from __future__ import annotations

import logging
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from engine.config import SAMPLE_RATE

log = logging.getLogger(__name__)

_NORM_EPS = 1e-7  # the HF feature extractor's zero-mean/unit-variance epsilon


def rows_for_latent_frames(f0: int, f1: int, frames_per_latent: int = 4) -> tuple[int, int]:
    """Rows ``[start, end)`` of the zero-prefixed feature matrix that drive latent frames ``[f0, f1)``.

    The matrix has one all-zero row 0 (the reference frame) and then wav2vec frame r − 1 at row r
    (spec §1.8.2). Latent frame 0 takes row 0; latent frame k ≥ 1 takes rows 4k − 3 … 4k.
    """
    if not 0 <= f0 < f1:
        raise ValueError(f"need 0 <= f0 < f1, got f0={f0}, f1={f1}")
    start = 0 if f0 == 0 else 1 + frames_per_latent * (f0 - 1)
    end = 1 if f1 <= 1 else 1 + frames_per_latent * (f1 - 1)
    return start, end


def feature_dim(config) -> int:
    """Width of one feature row: last_hidden_state plus every encoder hidden state (embedding + layers)."""
    return (config.num_hidden_layers + 2) * config.hidden_size


def _as_pcm(pcm) -> np.ndarray:
    array = pcm.detach().cpu().numpy() if isinstance(pcm, torch.Tensor) else np.asarray(pcm)
    if array.ndim != 1:
        raise ValueError(f"expected mono PCM as a 1-D array at {SAMPLE_RATE} Hz, got shape {array.shape}")
    return array.astype(np.float32, copy=False)


class Wav2VecFeatures:
    """wav2vec2 features at one row per video frame, from a local HF folder only (no hub access)."""

    def __init__(self, model_dir: str | os.PathLike, device: str | torch.device = "cpu", fps: int = 25,
                 context_frames: int = 250, lookahead_frames: int = 8, normalize: bool | None = None) -> None:
        try:
            from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model
        except ImportError as exc:  # the paper model is optional; say what to install
            raise ImportError("the wav2vec2 audio encoder needs `pip install transformers`") from exc
        if SAMPLE_RATE % fps:
            raise ValueError(f"fps must divide {SAMPLE_RATE} so a video frame is a whole number of samples, got {fps}")
        if context_frames < 0 or lookahead_frames < 0:
            raise ValueError("context_frames and lookahead_frames must be >= 0")
        model_dir = os.fspath(model_dir)
        self.extractor = Wav2Vec2FeatureExtractor.from_pretrained(model_dir, local_files_only=True)
        if self.extractor.sampling_rate != SAMPLE_RATE:
            raise ValueError(f"{model_dir}: feature extractor expects {self.extractor.sampling_rate} Hz, need {SAMPLE_RATE}")
        self.model = Wav2Vec2Model.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        cfg = self.model.config
        if cfg.do_stable_layer_norm:
            raise ValueError(f"{model_dir}: pre-LN ('stable layer norm') wav2vec2 is not the base model the paper used")
        self.device = torch.device(device)
        self.fps = fps
        self.samples_per_frame = SAMPLE_RATE // fps
        hop = math.prod(cfg.conv_stride)
        if self.samples_per_frame % hop:
            log.warning("%d samples per frame is not a multiple of the conv hop %d: streamed rows will not "
                        "line up exactly with offline rows", self.samples_per_frame, hop)
        self.normalize = bool(self.extractor.do_normalize if normalize is None else normalize)
        self.dim = feature_dim(cfg)
        self.context_frames = context_frames
        self.lookahead_frames = lookahead_frames
        self.reset()

    # -- offline: the authors' recipe -------------------------------------------------------------

    @torch.no_grad()
    def encode(self, pcm16k) -> torch.Tensor:
        """Whole clip -> (len // samples_per_frame, dim) float32 on the CPU, exactly as the authors do."""
        pcm = _as_pcm(pcm16k)
        n_frames = len(pcm) // self.samples_per_frame
        if n_frames == 0:
            return torch.zeros(0, self.dim)
        if self.normalize:  # statistics of the whole clip, before truncation (spec §1.8.1 steps 2-3)
            pcm = self.extractor(pcm, sampling_rate=SAMPLE_RATE, return_tensors="np").input_values[0]
        return self._features(pcm[: n_frames * self.samples_per_frame], n_frames)

    def _features(self, pcm: np.ndarray, n_frames: int) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(pcm, dtype=np.float32))[None].to(self.device)
        conv = self.model.feature_extractor(x)  # (1, C, ~2 per frame)
        conv = F.interpolate(conv, size=n_frames, mode="linear", align_corners=True).transpose(1, 2)
        return self._encode_conv(conv)[0].float().cpu()

    def _encode_conv(self, conv: torch.Tensor) -> torch.Tensor:
        """Conv features (B, T, C) -> (B, T, dim), the encoder run by hand to keep every hidden state.

        Written out rather than taken from ``Wav2Vec2Model.forward`` because that forward cannot
        start from (interpolated) conv features, and its hidden-state plumbing differs between
        transformers 4.x and 5.x.
        """
        hidden, _ = self.model.feature_projection(conv)
        encoder = self.model.encoder
        hidden = hidden + encoder.pos_conv_embed(hidden)
        hidden = encoder.dropout(encoder.layer_norm(hidden))
        states = [hidden]
        for layer in encoder.layers:
            out = layer(hidden, attention_mask=None)
            hidden = out[0] if isinstance(out, tuple) else out
            states.append(hidden)
        return torch.cat([hidden, *states], dim=-1)

    # -- streaming ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all audio and statistics: the next ``push`` starts a new stream at frame 0."""
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # frame index of the first buffered sample
        self._emitted = 0
        self._count = 0
        self._sum = 0.0
        self._sum_sq = 0.0

    @property
    def frames_emitted(self) -> int:
        return self._emitted

    def push(self, pcm_chunk) -> torch.Tensor:
        """Add audio (any length); return the rows of frames that now have their look-ahead, (n_new, dim)."""
        chunk = _as_pcm(pcm_chunk)
        chunk64 = chunk.astype(np.float64)
        self._count += len(chunk)
        self._sum += float(chunk64.sum())
        self._sum_sq += float((chunk64 * chunk64).sum())
        self._buffer = np.concatenate([self._buffer, chunk])
        return self._emit_until(self._complete_frames() - self.lookahead_frames)

    def flush(self) -> torch.Tensor:
        """End of a finite stream: return the remaining complete frames without look-ahead."""
        return self._emit_until(self._complete_frames())

    def _complete_frames(self) -> int:
        return self._buffer_start + len(self._buffer) // self.samples_per_frame

    @torch.no_grad()
    def _emit_until(self, stop: int) -> torch.Tensor:
        total = self._complete_frames()
        rows = []
        step = max(1, self.context_frames)  # bounds the window to about 2 contexts + look-ahead
        while self._emitted < stop:
            first, last = self._emitted, min(stop, self._emitted + step)
            start, end = max(0, first - self.context_frames), min(total, last + self.lookahead_frames)
            offset = (start - self._buffer_start) * self.samples_per_frame
            window = self._buffer[offset: offset + (end - start) * self.samples_per_frame]
            rows.append(self._features(self._running_normalise(window), end - start)[first - start: last - start])
            self._emitted = last
        self._trim()
        return torch.cat(rows) if rows else torch.zeros(0, self.dim)

    def _running_normalise(self, window: np.ndarray) -> np.ndarray:
        # Departure from the authors (whole-clip statistics): only the audio heard so far is known.
        if not self.normalize or self._count == 0:
            return window
        mean = self._sum / self._count
        var = max(self._sum_sq / self._count - mean * mean, 0.0)
        return ((window - mean) / np.sqrt(var + _NORM_EPS)).astype(np.float32)

    def _trim(self) -> None:
        keep_from = max(0, self._emitted - self.context_frames)
        drop = keep_from - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop * self.samples_per_frame:]
            self._buffer_start = keep_from

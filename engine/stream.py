"""One object that turns PCM into video frames: audio features -> streaming sampler -> decoder.

This is the engine's library entry point (the app's session drives it from a worker thread): load
a model card, `start(image)`, then `push_audio(pcm)` returns whatever frames became ready. Every
size (fps, resolution, frames per block, feature size) comes from the card.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from engine.card import ModelCard, TextSpec, resolve_card
from engine.checkpoints import CheckpointError
from engine.codecs.audio import build_audio_encoder
from engine.codecs.decoders import build_decoder, fit_image
from engine.config import replace
from engine.sampler import SelfForcingSampler, StreamingSampler

if TYPE_CHECKING:  # imported where used, so the stream does not pull in the text stack up front
    from engine.codecs.text_encoder import HFTextEncoder
    from engine.toon.identity import Identity

log = logging.getLogger(__name__)

TIMES_KEPT = 1000  # recent step / decode times each stream keeps (for percentiles)


class AvatarStream:
    """Streams one avatar: feed PCM (16 kHz mono float32), get RGB frames (uint8 HxWx3)."""

    def __init__(self, card: ModelCard, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 seed: int | None = 0, baseline: bool = False, vad: bool = False, **stream_overrides):
        self.card = card
        self.device = torch.device(device)
        stream = replace(card.stream, **stream_overrides) if stream_overrides else card.stream
        rows = stream.block_frames * card.model.audio_pack
        self.frames_per_block = stream.block_frames * card.video_frames_per_latent
        if rows != self.frames_per_block:
            raise CheckpointError(f"model '{card.name}': {rows} audio rows per block but {self.frames_per_block} "
                                  "video frames per block; audio_pack must equal video_frames_per_latent")
        self.model = card.build(self.device, dtype)
        self.audio = build_audio_encoder(card, card.fps, vad=vad)
        if self.audio.dim != card.model.audio_dim:
            raise CheckpointError(f"model '{card.name}': audio encoder gives {self.audio.dim} features per frame, "
                                  f"the model expects {card.model.audio_dim}")
        self.decoder = build_decoder(card, self.device, seed=seed)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed) if seed is not None else int(time.time_ns() % 2**31))
        sampler_cls = SelfForcingSampler if baseline else StreamingSampler
        self.sampler = sampler_cls(self.model, stream, generator=gen)
        self.stream_config = stream
        self._features = torch.zeros(0, card.model.audio_dim)
        self.step_ms: list[float] = []     # recent step / decode times (bounded: a stream may run for hours)
        self.decode_ms: list[float] = []

    # -- facts the app needs ---------------------------------------------------------------------
    @property
    def fps(self) -> float:
        return self.card.fps

    @property
    def size(self) -> tuple[int, int]:
        return self.card.width, self.card.height

    @property
    def block_seconds(self) -> float:
        return self.frames_per_block / self.fps

    @property
    def expected_latency_s(self) -> float:
        """Structural audio->video delay: a block of audio, the window's look-ahead, feature look-ahead."""
        look = getattr(self.audio, "lookahead_ms", 0.0) / 1000.0
        return expected_latency_s(self.block_seconds, self.sampler.latency_blocks, look)

    # -- streaming -------------------------------------------------------------------------------
    def start(self, image: np.ndarray, text_context: torch.Tensor | None = None, prompt: str | None = None,
              identity: Identity | None = None) -> np.ndarray:
        """Encode the avatar image as the style anchor; returns the image fitted to the stream's size.

        A model with text cross-attention needs a context: `text_context` as given, or the
        embedding of `prompt` (default "") from the card's prompt cache. `identity`: a cartoon
        avatar's `engine.toon.identity.Identity`, so the decoder can draw it with its rig (and the
        model sees a green-screen cartoon on its own background: `anchor_image`).
        """
        if self.card.model.has_text and text_context is None:
            text_context = self._prompt_embedding(prompt or "")[None]
        fitted = fit_image(image, *self.size)
        ref = self.decoder.encode_image(self.decoder.anchor_image(fitted, identity))
        self.sampler.start(ref, text_context)
        self.decoder.reset(ref, fitted, identity=identity)
        self.audio.reset()
        self._features = torch.zeros(0, self.card.model.audio_dim)
        return fitted

    def _prompt_embedding(self, prompt: str) -> torch.Tensor:
        """(text_len, text_dim) from the card's PromptCache; umT5 is loaded (then freed) only on a miss."""
        from engine.codecs.text_encoder import PromptCache
        spec = self.card.text
        if spec is None:
            raise CheckpointError(f"model '{self.card.name}' needs a text prompt encoder but its card names none; "
                                  "re-import it with `avatarcam models import`")
        cache = PromptCache(self.card.path(spec.cache_dir))
        encoder = self._text_encoder(spec)
        key = encoder.encoder_id if encoder is not None else spec.encoder_id or ""
        try:
            return cache.get(prompt, key, encoder)
        except KeyError as exc:
            raise CheckpointError(f"model '{self.card.name}': prompt {prompt!r} is not in the prompt cache and the "
                                  "card has no umT5 encoder to encode it: neither an HF-format folder (model_dir) "
                                  "nor the Wan .pth (weights) plus its tokenizer folder (tokenizer_dir) is there; "
                                  "re-import it with the Wan2.1 download") from exc

    def _text_encoder(self, spec: TextSpec) -> HFTextEncoder | None:
        """The card's umT5 encoder (not loaded yet), or None when its files are absent.

        An HF folder (``model_dir``) wins; otherwise the Wan download's ``.pth`` (``weights``) with
        its tokenizer folder, run in bf16 as the authors do. Missing files give None rather than an
        error, so prompts already in the cache still work.
        """
        from engine.codecs.text_encoder import HFTextEncoder
        tokenizer = self.card.path(spec.tokenizer_dir) if spec.tokenizer_dir else None
        if spec.model_dir:
            return HFTextEncoder(self.card.path(spec.model_dir), tokenizer, device=self.device,
                                 encoder_id=spec.encoder_id)
        weights = self.card.path(spec.weights) if spec.weights else None
        if weights is not None and weights.is_file() and tokenizer is not None and tokenizer.is_dir():
            return HFTextEncoder(weights, tokenizer, device=self.device, dtype=torch.bfloat16,
                                 encoder_id=spec.encoder_id)
        return None

    def push_audio(self, pcm: np.ndarray) -> list[np.ndarray]:
        """Add audio; returns the frames of every block that became clean (maybe none)."""
        feats = self.audio.push(np.asarray(pcm, dtype=np.float32))
        return self._consume(feats)

    def flush(self) -> list[np.ndarray]:
        """End of a finite input: pad the last partial block with silence-like features, drain the window."""
        frames: list[np.ndarray] = []
        for block_feats in self.final_blocks():
            frames += self._step(block_feats)
        for block in self.sampler.flush():
            frames += self._decode(block)
        return frames

    def feature_blocks(self, feats: torch.Tensor) -> Iterator[torch.Tensor]:
        """Buffer new features; yield every whole block of them (the rest waits for more audio)."""
        if feats.numel():
            self._features = torch.cat([self._features, feats.to(self._features.dtype)])
        n = self.frames_per_block
        while self._features.shape[0] >= n:
            block_feats, self._features = self._features[:n], self._features[n:]
            yield block_feats

    def final_blocks(self) -> Iterator[torch.Tensor]:
        """End of input: the encoder's last features, then the partial block padded with its last row."""
        yield from self.feature_blocks(self.audio.flush())
        pending = self._features.shape[0]
        if pending:
            pad = self.frames_per_block - pending
            yield from self.feature_blocks(self._features[-1:].expand(pad, -1).clone())

    def _consume(self, feats: torch.Tensor) -> list[np.ndarray]:
        frames: list[np.ndarray] = []
        for block_feats in self.feature_blocks(feats):
            frames += self._step(block_feats)
        return frames

    def _step(self, block_feats: torch.Tensor) -> list[np.ndarray]:
        block = self.timed_step(block_feats)
        return self._decode(block) if block is not None else []

    def timed_step(self, block_feats: torch.Tensor) -> torch.Tensor | None:
        """One sampler step, its time kept in `step_ms` (the pipelined stream calls it on its own thread)."""
        t0 = time.perf_counter()
        block = self.sampler.step(block_feats)
        _keep_recent(self.step_ms, (time.perf_counter() - t0) * 1000)
        return block

    def _decode(self, block: torch.Tensor) -> list[np.ndarray]:
        t0 = time.perf_counter()
        images = self.decoder.decode(block[0])
        _keep_recent(self.decode_ms, (time.perf_counter() - t0) * 1000)
        return list(images)


def _keep_recent(times: list[float], ms: float) -> None:
    """Append; past 2 x TIMES_KEPT entries drop all but the newest TIMES_KEPT (amortised O(1))."""
    times.append(ms)
    if len(times) > 2 * TIMES_KEPT:
        del times[:-TIMES_KEPT]


def expected_latency_s(block_s: float, lookahead_blocks: int, feature_lookahead_s: float) -> float:
    """The structural audio->video delay: a block of audio must arrive, then its block waits
    `lookahead_blocks` window steps (L-1 for the sliding window) before it is clean, plus the audio
    features' own look-ahead. The one formula for the app's estimates and the running stream."""
    return block_s * (1 + lookahead_blocks) + feature_lookahead_s


def open_stream(model: str | Path | None = None, device: str = "cpu", **kwargs) -> AvatarStream:
    return AvatarStream(resolve_card(model), device=device, **kwargs)

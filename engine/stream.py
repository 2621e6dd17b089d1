"""One object that turns PCM into video frames: audio features -> streaming sampler -> decoder.

This is the engine's library entry point (the app's session drives it from a worker thread): load
a model card, `start(image)`, then `push_audio(pcm)` returns whatever frames became ready. Every
size (fps, resolution, frames per block, feature size) comes from the card.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol

import numpy as np
import torch

from engine.checkpoints import CheckpointError, ModelCard, load_card
from engine.config import SAMPLE_RATE, replace
from engine.sampler import SelfForcingSampler, StreamingSampler

if TYPE_CHECKING:  # imported where used, so the stream does not pull in the text stack up front
    from engine.codecs.text_encoder import HFTextEncoder
    from engine.codecs.rigdecoder import RigDecoder
    from engine.toon.identity import Identity

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent / "models"
TIMES_KEPT = 1000  # recent step / decode times each stream keeps (for percentiles)


class FrameDecoder(Protocol):
    def encode_image(self, image: np.ndarray) -> torch.Tensor: ...
    def reset(self, reference_latent: torch.Tensor, image: np.ndarray, identity: Identity | None = None) -> None: ...
    def decode(self, latents: torch.Tensor) -> np.ndarray: ...


class ToonDecoder:
    """Our per-frame autoencoder's encoder, and the reference-aware decoder when the card has one.

    With `decoder.reference` in the card the frames are drawn at the card's size by
    `engine.codecs.refdecoder.RefDecoder` from the latent plus the portrait (prepared once in `reset`), and
    an `IdleBlinks` clock adds blinks the audio cannot predict; without it, the autoencoder's own
    decoder draws them at its size. Frames are independent, so streaming needs no other state.
    """

    def __init__(self, card: ModelCard, device: str | torch.device, seed: int | None = 0):
        from engine.codecs.autoencoder import ToonAutoencoder
        self.ae = _load_part(card, card.decoder.get("weights", "autoencoder.safetensors"), "decoder",
                             lambda p: ToonAutoencoder.load(p, map_location="cpu").to(device))
        self.size = self.ae.cfg.image_size
        self.ref_decoder = None
        if card.decoder.get("reference"):
            from engine.codecs.refdecoder import BaseDecoder, RefDecoder
            self.ref_decoder = _load_part(card, card.decoder["reference"], "reference decoder",
                                          lambda p: RefDecoder.load(p).to(device))
            self.ref_decoder = self.ref_decoder.to(memory_format=torch.channels_last)
            if self.ref_decoder.cfg.base:
                self.ref_decoder.attach_base(BaseDecoder(self.ae))
        self.reader = None
        if card.decoder.get("rig"):
            from engine.codecs.rigdecoder import ControlReader
            self.reader = _load_part(card, card.decoder["rig"], "rig control reader",
                                     lambda p: ControlReader.load(p).to(device))
        self.out_size = int(card.width)     # frames are square at the card's size
        self.fps, self.seed = card.fps, seed
        blinks = card.decoder.get("idle_blinks", {})
        drawn = self.ref_decoder is not None or self.reader is not None
        self.blinks = IdleBlinks(card.fps, seed=seed, **blinks) if drawn and blinks else None
        self._ref: tuple | None = None
        self._rig = None          # engine.codecs.rigdecoder.RigDecoder while the avatar has a rig
        self.fast_decode = None   # engine.accel.FastRefDecode: same frames in bf16 / compiled, when chosen

    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        return self.ae.encode(fit_image(image, self.size, self.size))[0]

    def reset(self, reference_latent: torch.Tensor, image: np.ndarray, identity: Identity | None = None) -> None:
        """A new avatar: `image` (its picture) and, for cartoon avatars, its `identity` (engine.toon).

        With an identity whose portrait is `image` and a card with a rig reader, frames are drawn
        by the avatar's rig (engine.codecs.rigdecoder); otherwise by the reference-aware decoder.
        """
        self._z_ref = reference_latent.reshape(1, *reference_latent.shape[-3:])
        self._rig, self._ref = self._rig_for(identity, image), None
        if self.blinks is not None:
            self.blinks.reset()
        if self._rig is not None or self.ref_decoder is None:
            return
        from engine.codecs.refdecoder import image_to_tensor
        s = self.ref_decoder.cfg.image_size
        portrait = image_to_tensor(fit_image(image, s, s)).to(reference_latent.device)
        with torch.no_grad():
            self._ref = self.ref_decoder.prepare(portrait, self._z_ref)

    def _rig_for(self, identity: Identity | None, image: np.ndarray) -> RigDecoder | None:
        if identity is None or self.reader is None:
            return None
        from engine.codecs.rigdecoder import IdleHead, RigDecoder, rig_matches
        s = self.out_size
        if not rig_matches(identity, fit_image(image, s, s)):
            log.warning("avatar picture differs from its cartoon seed %s's portrait: drawing it as a picture",
                        getattr(identity, "seed", "?"))
            return None
        return RigDecoder(self.reader, identity, s, head=IdleHead(self.fps, seed=self.seed))

    @property
    def rigged(self) -> bool:
        """True while frames come from the avatar's rig rather than a learned decoder."""
        return self._rig is not None

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        latents = latents.reshape(-1, *latents.shape[-3:])
        if self._rig is not None:
            blinks = self.blinks.next(latents.shape[0]) if self.blinks is not None else None
            return self._rig.decode(latents, self._z_ref, blinks)
        if self.ref_decoder is None:
            return self.ae.decode(latents)
        if self._ref is None:
            raise RuntimeError("ToonDecoder.decode before reset(): the reference decoder needs the portrait")
        drive = None
        if self.blinks is not None:
            drive = torch.tensor(self.blinks.next(latents.shape[0]), dtype=latents.dtype)[:, None]
        return (self.fast_decode or self.ref_decoder.decode)(latents, self._ref, drive)


def _load_part(card: ModelCard, name: str, what: str, load):
    """One of the card's network files, or a CheckpointError naming the model and the missing part."""
    try:
        return load(card.path(name))
    except FileNotFoundError as exc:
        raise CheckpointError(f"model '{card.name}': {what} weights missing ({exc})") from exc


class IdleBlinks:
    """A seeded blink clock: how far the lids are shut (0..1) for each next frame.

    Why: blinking is not in the voice, so a one-step student driven by audio learns to keep the
    eyes open; people blink every few seconds whether they speak or not. The profile is the
    renderer's (60 ms closing, 40 ms shut, 110 ms opening).
    """

    def __init__(self, fps: float, seed: int | None = 0, min_s: float = 2.5, max_s: float = 6.0):
        self.fps, self.min_s, self.max_s = float(fps), float(min_s), float(max_s)
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.frame = 0
        self.next_blink = self._interval(first=True)

    def _interval(self, first: bool = False) -> int:
        lo = 0.5 if first else self.min_s
        return self.frame + max(1, int(round(self.rng.uniform(lo, self.max_s) * self.fps)))

    def _profile_at(self, t: float) -> float:
        close, shut, opening = 0.06, 0.04, 0.11
        if t < close:
            return t / close
        if t < close + shut:
            return 1.0
        if t < close + shut + opening:
            return 1.0 - (t - close - shut) / opening
        return 0.0

    def next(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        for i in range(n):
            t = (self.frame - self.next_blink) / self.fps
            if t >= 0:
                out[i] = self._profile_at(t + 0.5 / self.fps)
                if t > 0.21:
                    self.next_blink = self._interval()
            self.frame += 1
        return out


def fit_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the target aspect and resize (bilinear, antialiased): uint8 HxWx3."""
    from PIL import Image
    img = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    w, h = img.size
    target = width / height
    if w / h > target:
        cw = round(h * target)
        img = img.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h))
    elif w / h < target:
        ch = round(w / target)
        img = img.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch))
    if img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR, reducing_gap=None)
    return np.array(img)


def build_audio_encoder(card: ModelCard, fps: float):
    spec = dict(card.audio)
    kind = spec.pop("encoder", "logmel")
    if kind == "logmel":
        from engine.codecs.logmel import LogMelEncoder
        return LogMelEncoder(sample_rate=SAMPLE_RATE, fps=fps, **spec)
    if kind == "wav2vec2":
        from engine.codecs.wav2vec import Wav2VecFeatures
        if "path" not in spec:
            raise CheckpointError(f"model '{card.name}': the wav2vec2 audio encoder needs `path:` in the card")
        # samples per frame must be a whole number: pass 25, not 25.0
        return Wav2VecFeatures(card.path(spec.pop("path")), fps=int(fps) if float(fps).is_integer() else fps, **spec)
    raise CheckpointError(f"model '{card.name}': unknown audio encoder '{kind}' (known: logmel, wav2vec2)")


class WanDecoder:
    """The Wan2.1 VAE (paper model): causal in time, so the stream keeps its cache between blocks.

    `reset` decodes the reference latent first, as the authors' video starts with it: the causal
    cache then holds the reference frame when the first generated block arrives, and every latent
    frame after it decodes to `temporal_factor` (4) video frames.
    """

    def __init__(self, card: ModelCard, device: str | torch.device):
        from engine.paper import vae_config
        from engine.codecs.wan_vae import StreamingDecoder, load_wan_vae
        self.device = torch.device(device)
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        path = card.path(card.decoder.get("weights", "Wan2.1_VAE.pth"))
        if not path.is_file():
            raise CheckpointError(f"model '{card.name}': Wan VAE weights missing at {path}")
        try:
            self.vae = load_wan_vae(path, vae_config(card), self.device, self.dtype)
        except ValueError as exc:
            raise CheckpointError(f"model '{card.name}': {exc}") from exc
        self.stream = StreamingDecoder(self.vae)
        self.width, self.height = card.width, card.height

    @torch.no_grad()
    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        """uint8 HxWx3 -> normalised latent (C, h, w) of a one-frame video."""
        pixels = torch.from_numpy(np.ascontiguousarray(fit_image(image, self.width, self.height)))
        video = (pixels.permute(2, 0, 1).float() / 127.5 - 1.0)[None, None]
        return self.vae.encode(video.to(self.device, self.dtype))[0, 0].float()

    def reset(self, reference_latent: torch.Tensor, image: np.ndarray | None = None,
              identity: Identity | None = None) -> None:
        self.stream.reset()
        self.stream.decode(reference_latent.reshape(1, 1, *reference_latent.shape[-3:]).to(self.device, self.dtype))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(F, C, h, w) latents -> uint8 (temporal_factor * F, H, W, 3), truncated like the authors' writer."""
        frames = self.stream.decode(latents.reshape(1, -1, *latents.shape[-3:]).to(self.device, self.dtype))[0]
        pixels = ((frames.float() + 1.0) * 127.5).clamp_(0, 255).to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).cpu().numpy()


def build_decoder(card: ModelCard, device: str | torch.device, seed: int | None = 0) -> FrameDecoder:
    kind = card.decoder.get("kind", "toon")
    if kind == "toon":
        return ToonDecoder(card, device, seed=seed)
    if kind == "wan":
        return WanDecoder(card, device)
    raise CheckpointError(f"model '{card.name}': decoder '{kind}' is not available in this build (known: toon, wan)")


def resolve_card(model: str | Path | None) -> ModelCard:
    """A shipped model by name ('toon') or a path to a card folder."""
    name = str(model or "toon")
    candidate = Path(name).expanduser()
    if candidate.exists():
        return load_card(candidate)
    shipped = MODELS_DIR / name
    if shipped.exists():
        return load_card(shipped)
    known = sorted(p.name for p in MODELS_DIR.iterdir() if (p / "model.yaml").exists()) if MODELS_DIR.exists() else []
    raise CheckpointError(f"model '{name}' not found: give a model folder (with model.yaml) or one of {known}")


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
        self.audio = build_audio_encoder(card, card.fps)
        if vad:   # non-speech reaches the model as silence (engine.codecs.vad)
            from engine.codecs.vad import VoiceGate
            self.audio = VoiceGate(self.audio)
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
        """Encode the avatar image as the style anchor; returns the image as the model sees it.

        A model with text cross-attention needs a context: `text_context` as given, or the
        embedding of `prompt` (default "") from the card's prompt cache. `identity`: a cartoon
        avatar's `engine.toon.identity.Identity`, so the decoder can draw it with its rig.
        """
        if self.card.model.has_text and text_context is None:
            text_context = self._prompt_embedding(prompt or "")[None]
        fitted = fit_image(image, *self.size)
        ref = self.decoder.encode_image(fitted)
        self.sampler.start(ref, text_context)
        self.decoder.reset(ref, fitted, identity=identity)
        self.audio.reset()
        self._features = torch.zeros(0, self.card.model.audio_dim)
        return fitted

    def _prompt_embedding(self, prompt: str) -> torch.Tensor:
        """(text_len, text_dim) from the card's PromptCache; umT5 is loaded (then freed) only on a miss."""
        from engine.paper import text_spec
        from engine.codecs.text_encoder import PromptCache
        spec = text_spec(self.card)
        if spec is None:
            raise CheckpointError(f"model '{self.card.name}' needs a text prompt encoder but its card names none; "
                                  "re-import it with `avatarcam models import`")
        cache = PromptCache(self.card.path(spec.get("cache_dir", "prompt_cache")))
        encoder = self._text_encoder(spec)
        key = encoder.encoder_id if encoder is not None else spec.get("encoder_id", "")
        try:
            return cache.get(prompt, key, encoder)
        except KeyError as exc:
            raise CheckpointError(f"model '{self.card.name}': prompt {prompt!r} is not in the prompt cache and the "
                                  "card has no umT5 encoder to encode it: neither an HF-format folder (model_dir) "
                                  "nor the Wan .pth (weights) plus its tokenizer folder (tokenizer_dir) is there; "
                                  "re-import it with the Wan2.1 download") from exc

    def _text_encoder(self, spec: dict) -> HFTextEncoder | None:
        """The card's umT5 encoder (not loaded yet), or None when its files are absent.

        An HF folder (``model_dir``) wins; otherwise the Wan download's ``.pth`` (``weights``) with
        its tokenizer folder, run in bf16 as the authors do. Missing files give None rather than an
        error, so prompts already in the cache still work.
        """
        from engine.codecs.text_encoder import HFTextEncoder
        tokenizer = self.card.path(spec["tokenizer_dir"]) if spec.get("tokenizer_dir") else None
        if spec.get("model_dir"):
            return HFTextEncoder(self.card.path(spec["model_dir"]), tokenizer, device=self.device,
                                 encoder_id=spec.get("encoder_id"))
        weights = self.card.path(spec["weights"]) if spec.get("weights") else None
        if weights is not None and weights.is_file() and tokenizer is not None and tokenizer.is_dir():
            return HFTextEncoder(weights, tokenizer, device=self.device, dtype=torch.bfloat16,
                                 encoder_id=spec.get("encoder_id"))
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


def feature_lookahead_s(audio_spec: dict) -> float:
    """Seconds of future audio a card's encoder reads per frame (log-mel's `lookahead_ms`; wav2vec2: 0 here)."""
    spec = dict(audio_spec)
    if spec.get("encoder", "logmel") != "logmel":
        return 0.0
    from engine.codecs.logmel import DEFAULT_LOOKAHEAD_MS
    return float(spec.get("lookahead_ms", DEFAULT_LOOKAHEAD_MS)) / 1000.0


def open_stream(model: str | Path | None = None, device: str = "cpu", **kwargs) -> AvatarStream:
    return AvatarStream(resolve_card(model), device=device, **kwargs)

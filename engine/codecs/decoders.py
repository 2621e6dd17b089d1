"""A card's frame decoder: latents in, RGB frames out, drawn the way the card says.

`build_decoder` picks it from the card's `decoder` section: `ToonDecoder` (our autoencoder, with the
reference-aware decoder and the cartoon rig when the card has them, and `IdleBlinks`) or
`WanDecoder` (the paper's Wan2.1 VAE, causal in time). Every decoder fits the avatar picture to its
size with `fit_image` and encodes it once as the style anchor.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from engine.card import ModelCard
from engine.checkpoints import CheckpointError

if TYPE_CHECKING:
    from engine.codecs.rigdecoder import RigDecoder
    from engine.toon.identity import Identity

log = logging.getLogger(__name__)


class FrameDecoder(Protocol):
    def anchor_image(self, image: np.ndarray, identity: Identity | None = None) -> np.ndarray: ...
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
        spec = card.decoder
        self.ae = _load_part(card, spec.weights_file, "decoder",
                             lambda p: ToonAutoencoder.load(p, map_location="cpu").to(device))
        self.size = self.ae.cfg.image_size
        self.ref_decoder = None
        if spec.reference:
            from engine.codecs.refdecoder import BaseDecoder, RefDecoder
            self.ref_decoder = _load_part(card, spec.reference, "reference decoder",
                                          lambda p: RefDecoder.load(p).to(device))
            self.ref_decoder = self.ref_decoder.to(memory_format=torch.channels_last)
            if self.ref_decoder.cfg.base:
                self.ref_decoder.attach_base(BaseDecoder(self.ae))
        self.reader = None
        if spec.rig:
            from engine.codecs.rigdecoder import ControlReader
            self.reader = _load_part(card, spec.rig, "rig control reader",
                                     lambda p: ControlReader.load(p).to(device))
        self.out_size = int(card.width)     # frames are square at the card's size
        self.fps, self.seed = card.fps, seed
        blinks = spec.idle_blinks
        drawn = self.ref_decoder is not None or self.reader is not None
        self.blinks = IdleBlinks(card.fps, seed=seed, min_s=blinks.min_s, max_s=blinks.max_s) \
            if drawn and blinks else None
        self._ref: tuple | None = None
        self._rig = None          # engine.codecs.rigdecoder.RigDecoder while the avatar has a rig
        self.fast_decode = None   # engine.accel.FastRefDecode: same frames in bf16 / compiled, when chosen

    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        return self.ae.encode(fit_image(image, self.size, self.size))[0]

    def anchor_image(self, image: np.ndarray, identity: Identity | None = None) -> np.ndarray:
        """The picture the model is anchored on: `image`, except that a cartoon on a green screen that
        its rig will draw is shown to the model on its own generator background (chroma.off_key)."""
        if identity is None or self.reader is None or identity.background != "chroma" \
                or not self._is_portrait_of(identity, image):
            return image
        from engine.toon import render_portrait
        from engine.toon.chroma import off_key
        return fit_image(render_portrait(off_key(identity), self.out_size), image.shape[1], image.shape[0])

    def _is_portrait_of(self, identity: Identity, image: np.ndarray) -> bool:
        """Is `image` this identity's portrait (so its rig may draw it)? engine.codecs.rigdecoder.rig_matches."""
        from engine.codecs.rigdecoder import rig_matches
        return rig_matches(identity, fit_image(image, self.out_size, self.out_size))

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
        from engine.codecs.rigdecoder import IdleHead, MouthGate, RigDecoder
        if not self._is_portrait_of(identity, image):
            log.warning("avatar picture differs from its cartoon seed %s's portrait: drawing it as a picture",
                        getattr(identity, "seed", "?"))
            return None
        return RigDecoder(self.reader, identity, self.out_size, head=IdleHead(self.fps, seed=self.seed),
                          gate=MouthGate(self.fps))

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


class WanDecoder:
    """The Wan2.1 VAE (paper model): causal in time, so the stream keeps its cache between blocks.

    `reset` decodes the reference latent first, as the authors' video starts with it: the causal
    cache then holds the reference frame when the first generated block arrives, and every latent
    frame after it decodes to `temporal_factor` (4) video frames.
    """

    def __init__(self, card: ModelCard, device: str | torch.device):
        from engine.codecs.wan_vae import StreamingDecoder, load_wan_vae
        self.device = torch.device(device)
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        path = card.path(card.decoder.weights_file)
        if not path.is_file():
            raise CheckpointError(f"model '{card.name}': Wan VAE weights missing at {path}")
        try:
            self.vae = load_wan_vae(path, card.decoder.vae_config, self.device, self.dtype)
        except ValueError as exc:
            raise CheckpointError(f"model '{card.name}': {exc}") from exc
        self.stream = StreamingDecoder(self.vae)
        self.width, self.height = card.width, card.height

    def anchor_image(self, image: np.ndarray, identity: Identity | None = None) -> np.ndarray:
        return image

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
    """The decoder the card's `decoder.kind` names (the card accepts only the kinds built here)."""
    if card.decoder.kind == "wan":
        return WanDecoder(card, device)
    return ToonDecoder(card, device, seed=seed)

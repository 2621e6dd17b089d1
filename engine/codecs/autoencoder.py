"""A small per-frame conv autoencoder for the toon domain (our stand-in for the Wan VAE).

Why this shape: the encoder runs once (on the reference image), the decoder runs on every
streamed frame on a CPU, so the decoder does its heavy work at low resolution and grows the
image with pixel shuffles (channels -> space) instead of transposed convs at full size. A
256x256 frame becomes a 16x16xC latent (64 tokens after a 2x2 patch), scaled by
`latent_scale` so the diffusion model sees roughly unit-variance latents.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.codecs.weights_pair import load_weights, read_config, save_pair

logger = logging.getLogger(__name__)


@dataclass
class ToonAutoencoderConfig:
    """Every size of the autoencoder; `latent_scale` multiplies raw latents into ~unit variance."""

    image_size: int = 256
    latent_channels: int = 12
    enc_channels: tuple[int, ...] = (32, 48, 96, 128)
    dec_channels: tuple[int, ...] = (128, 64, 24, 12)
    latent_scale: float = 1.0
    latent_shift: float = 0.0

    def __post_init__(self) -> None:
        self.enc_channels = tuple(int(c) for c in self.enc_channels)
        self.dec_channels = tuple(int(c) for c in self.dec_channels)
        if len(self.enc_channels) != len(self.dec_channels):
            raise ValueError(f"enc_channels {self.enc_channels} and dec_channels {self.dec_channels} must have the same length")
        if self.image_size % self.downsample != 0:
            raise ValueError(f"image_size {self.image_size} must be a multiple of the downsample factor {self.downsample}")

    @property
    def downsample(self) -> int:
        """Pixel unshuffle (2) then one stride-2 stage per extra width: 2 ** len(channels)."""
        return 2 ** len(self.enc_channels)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["enc_channels"] = list(self.enc_channels)
        d["dec_channels"] = list(self.dec_channels)
        return d


class ResBlock(nn.Module):
    """Two 3x3 convs with a skip: cheap capacity at a fixed resolution."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class Encoder(nn.Module):
    def __init__(self, cfg: ToonAutoencoderConfig):
        super().__init__()
        ch = cfg.enc_channels
        layers: list[nn.Module] = [nn.PixelUnshuffle(2), nn.Conv2d(12, ch[0], 3, padding=1), ResBlock(ch[0])]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), ResBlock(c_out)]
        layers += [nn.SiLU(), nn.Conv2d(ch[-1], cfg.latent_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: ToonAutoencoderConfig):
        super().__init__()
        ch = cfg.dec_channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, ch[0], 3, padding=1), ResBlock(ch[0])]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            layers += [nn.Conv2d(c_in, c_out * 4, 3, padding=1), nn.PixelShuffle(2), ResBlock(c_out) if c_out >= 32 else nn.SiLU()]
        layers += [nn.SiLU(), nn.Conv2d(ch[-1], 3 * 4, 3, padding=1), nn.PixelShuffle(2)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ToonAutoencoder(nn.Module):
    """encode: images -> scaled latents (N, C, h, w); decode: latents -> uint8 (N, H, W, 3)."""

    def __init__(self, cfg: ToonAutoencoderConfig | None = None):
        super().__init__()
        self.cfg = cfg or ToonAutoencoderConfig()
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg)

    # -- tensors in [-1, 1] (training path) ------------------------------------------------
    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    # -- user path: images and scaled latents ----------------------------------------------
    def _to_input(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"encode: expected images of shape (N, H, W, 3), got {tuple(x.shape)}")
        s = self.cfg.image_size
        if x.shape[1] != s or x.shape[2] != s:
            raise ValueError(f"encode: expected {s}x{s} images (config image_size), got {x.shape[1]}x{x.shape[2]}")
        if x.dtype == torch.uint8:
            x = x.float() / 127.5 - 1.0
        else:
            x = x.float() * 2.0 - 1.0  # float images are taken as 0..1
        p = next(self.parameters())
        return x.permute(0, 3, 1, 2).to(device=p.device, dtype=p.dtype).contiguous()

    @torch.no_grad()
    def encode(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (0..255) or float (0..1) images (N, H, W, 3) -> latents (N, C, h, w), ~unit variance."""
        z = self.encoder(self._to_input(images))
        return (z - self.cfg.latent_shift) * self.cfg.latent_scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Scaled latents (N, C, h, w) -> uint8 images (N, H, W, 3)."""
        if latents.ndim != 4 or latents.shape[1] != self.cfg.latent_channels:
            raise ValueError(f"decode: expected latents (N, {self.cfg.latent_channels}, h, w), got {tuple(latents.shape)}")
        p = next(self.parameters())
        z = latents.to(device=p.device, dtype=p.dtype) / self.cfg.latent_scale + self.cfg.latent_shift
        x = self.decoder(z)
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()

    # -- files -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write `<path>` (.safetensors) and the config next to it (.yaml), each atomically."""
        save_pair(self, self.cfg.to_dict(), path, "toon-autoencoder")

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str = "cpu") -> "ToonAutoencoder":
        path, cfg = read_config(path, "toon autoencoder")
        return load_weights(cls(ToonAutoencoderConfig(**cfg)), path, "toon autoencoder", map_location)


DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "toon" / "autoencoder.safetensors"


def load_default(map_location: str = "cpu") -> ToonAutoencoder:
    """The trained toon autoencoder shipped with the engine."""
    return ToonAutoencoder.load(DEFAULT_WEIGHTS, map_location)

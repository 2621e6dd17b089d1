"""A reference-aware decoder: latents in, full-resolution frames that keep the avatar's own pixels.

Why: the per-frame autoencoder squeezes a 256x256 frame into 16x16x12 numbers and draws it back
from those alone, so outlines, eye whites, irises and glasses are lost before the diffusion model
even runs. But the reference portrait is known for the whole stream. This decoder reads features
of the portrait once per stream (`prepare`) and, per frame, predicts from the latent (and its
difference to the reference latent) two things at low cost:

- a sharp mask of where the picture changed (mouth interior, eyelids, the jaw line),
- the synthesised pixels for those places,

then blends: ``frame = portrait * (1 - mask) + synth * mask``. Where nothing changed the mask is
~0 and the output is the portrait itself, pixel for pixel, so it cannot shimmer or lose an
outline. The last layer draws a 4x4 patch per 128x128 cell (sub-pixel convolution), and the
full-resolution work is one sigmoid and one blend, so a 512x512 frame costs about what the old
256x256 decoder did. The optional `drive` input (blink) adds idle motion the audio cannot predict
on top of what the latent shows; zero drive means "just the latent".

Why no warp: a dense flow at 512x512 (grid_sample) alone cost more than the whole old decoder on
one core, and the generator's latents barely move the head; the mask redraws what moves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.codecs.weights_pair import load_weights, read_config, save_pair
from engine.config import to_dict

DRIVE_NAMES = ("blink",)


@dataclass
class RefDecoderConfig:
    """Sizes. `image_size` is the output (and portrait) size; latents are `latent_size` square."""

    image_size: int = 512
    latent_channels: int = 12
    latent_size: int = 16
    ref_channels: tuple[int, ...] = (8, 16, 24, 32)      # portrait features at 1/4 .. 1/32 of image_size
    trunk_channels: tuple[int, ...] = (64, 48, 24, 12)   # at latent_size x1, x2, x4, x8
    out_patch: int = 4                                    # the last stage draws out_patch^2 pixels per cell
    drive_dim: int = len(DRIVE_NAMES)
    base: bool = True                                     # synthesis starts from the autoencoder's frame
    prior_gain: float = 20.0                              # mask prior: gain * (latent distance - threshold)
    prior_threshold: float = 0.3                          # rms distance of a latent cell from the reference's
    prior_window: tuple[float, ...] = (0.5, 0.9, 0.2, 0.8)   # (top, bottom, left, right) fractions where the
    prior_threshold_outside: float = 1.5                  # ... threshold applies; outside it this one does

    def __post_init__(self) -> None:
        self.ref_channels = tuple(int(c) for c in self.ref_channels)
        self.prior_window = tuple(float(v) for v in self.prior_window)
        if self.prior_window and len(self.prior_window) != 4:
            raise ValueError(f"RefDecoderConfig: prior_window needs (top, bottom, left, right), got {self.prior_window}")
        self.trunk_channels = tuple(int(c) for c in self.trunk_channels)
        if self.image_size != self.latent_size * 8 * self.out_patch:
            raise ValueError(f"RefDecoderConfig: image_size {self.image_size} must be latent_size {self.latent_size}"
                             f" x 8 x out_patch {self.out_patch}")
        if len(self.ref_channels) != 4 or len(self.trunk_channels) != 4:
            raise ValueError("RefDecoderConfig: ref_channels and trunk_channels need 4 sizes each")

    def to_dict(self) -> dict:
        return to_dict(self)


def conv(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2 if stride == 1 else 1)


class Up(nn.Module):
    """x2 by pixel shuffle: a conv at the low resolution makes 4x the channels (cheap on a CPU)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = conv(c_in, c_out * 4)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


class Fuse(nn.Module):
    """Join upsampled latent features with the portrait's features at the same scale."""

    def __init__(self, c_in: int, c_ref: int, c_out: int, second: bool = True):
        super().__init__()
        self.conv1 = conv(c_in + c_ref, c_out)
        self.conv2 = conv(c_out, c_out) if second else None
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv1(torch.cat([x, ref.expand(x.shape[0], -1, -1, -1)], 1)))
        return h if self.conv2 is None else h + self.conv2(self.act(h))


class PortraitFeatures(nn.Module):
    """The portrait (and its latent) -> features at 1/4, 1/8, 1/16, 1/32 of the image: run once per stream."""

    def __init__(self, cfg: RefDecoderConfig):
        super().__init__()
        c = cfg.ref_channels
        self.stem = nn.Sequential(nn.PixelUnshuffle(4), conv(48, c[0]), nn.SiLU(), conv(c[0], c[0]))
        self.down = nn.ModuleList([conv(c[i], c[i + 1], 4, 2) for i in range(3)])
        self.latent = conv(cfg.latent_channels, c[3], 1)
        self.act = nn.SiLU()

    def forward(self, image: torch.Tensor, latent: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(image)]
        for down in self.down:
            feats.append(down(self.act(feats[-1])))
        feats[-1] = feats[-1] + self.latent(latent)
        return feats


class RefDecoder(nn.Module):
    """(latents, drive) + prepared portrait -> frames in [-1, 1] at image_size."""

    def __init__(self, cfg: RefDecoderConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or RefDecoderConfig()
        r, t = cfg.ref_channels, cfg.trunk_channels
        self.portrait = PortraitFeatures(cfg)
        self.inp = conv(2 * cfg.latent_channels + cfg.drive_dim, t[0])
        self.fuse16 = Fuse(t[0], r[3], t[0])
        self.up32, self.fuse32 = Up(t[0], t[1]), Fuse(t[1], r[2], t[1])
        self.up64, self.fuse64 = Up(t[1], t[2]), Fuse(t[2], r[1], t[2])
        self.up128, self.fuse128 = Up(t[2], t[3]), Fuse(t[3], r[0], t[3], second=False)
        p = cfg.out_patch
        # per 128-res cell, a linear map draws its p x p patch: RGB, and a mask for each of them
        self.rgb = nn.Linear(t[3], p * p * 3)
        self.alpha = nn.Linear(t[3], p * p * 3)
        self.act = nn.SiLU()
        for mod in self.modules():                        # keep activations at scale through ~12 convs:
            if isinstance(mod, nn.Conv2d):                # torch's default init shrinks them ~3x per layer
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                nn.init.zeros_(mod.bias)
        with torch.no_grad():                             # start from the prior mask and a zero residual
            for lin in (self.alpha, self.rgb):
                lin.weight.zero_(), lin.bias.zero_()
        self.base: nn.Module | None = None                # set by attach_base; not part of these weights

    def attach_base(self, base: nn.Module | None) -> "RefDecoder":
        """The per-frame autoencoder's decoder (latents -> frames at image_size / 2, [-1, 1]).

        Its frame, upsampled, is what the synthesis starts from: it already draws every mouth the
        generator makes (the mouth probe reads it at r 0.96), so this decoder only has to learn
        where to use it (the mask) and how to sharpen it (a residual). Kept outside this module's
        state: the card ships it once, as the autoencoder.
        """
        object.__setattr__(self, "base", base)
        return self

    # -- once per stream ------------------------------------------------------------------------
    def prepare(self, image: torch.Tensor, latent: torch.Tensor) -> tuple:
        """Portrait (1, 3, S, S) in [-1, 1] and its latent (1, C, h, w) -> the per-stream state.

        The portrait is also kept in "patch layout" (1, S/p, S/p, p*p*3), the layout the last
        layer draws in, so the full-resolution work per frame is one sigmoid, one lerp and one
        shuffle of bytes at the end.
        """
        image = image.contiguous(memory_format=torch.channels_last)
        return to_patches(image, self.cfg.out_patch), latent, self.portrait(image, latent)

    # -- every frame ----------------------------------------------------------------------------
    def forward(self, z: torch.Tensor, ref: tuple, drive: torch.Tensor | None = None,
                return_parts: bool = False):
        """Frames in patch layout (N, S/p, S/p, p*p*3), in [-1, 1]: the portrait where the mask is 0."""
        portrait, z_ref, feats = ref
        n = z.shape[0]
        if drive is None:
            drive = z.new_zeros(n, self.cfg.drive_dim)
        d = drive[:, :, None, None].expand(-1, -1, *z.shape[-2:])
        x = torch.cat([z, z - z_ref.to(z.dtype), d.to(z.dtype)], 1).contiguous(memory_format=torch.channels_last)
        h = self.act(self.inp(x))
        h = self.fuse16(h, feats[3])
        h = self.fuse32(self.act(self.up32(h)), feats[2])
        h = self.fuse64(self.act(self.up64(h)), feats[1])
        h = self.fuse128(self.act(self.up128(h)), feats[0]).permute(0, 2, 3, 1)   # (n, s, s, c), a view
        synth, mask = self.rgb(h), torch.sigmoid(self.alpha(h) + self.mask_prior(z, z_ref, h.shape[1:3]))
        if self.base is not None:
            k = self.cfg.image_size // self.cfg.latent_size
            with torch.no_grad():
                base = F.interpolate(self.base(z), size=(z.shape[-2] * k, z.shape[-1] * k), mode="bilinear",
                                     align_corners=False)
            synth = synth + to_patches(base, self.cfg.out_patch)
        frame = torch.lerp(portrait.expand_as(synth), synth, mask)
        if return_parts:
            return frame, {"mask": mask, "synth": synth}
        return frame

    def mask_prior(self, z: torch.Tensor, z_ref: torch.Tensor, cells: tuple[int, int]) -> torch.Tensor:
        """Mask logits from how far each latent cell is from the reference's: (n, cells, cells, 1).

        Why: in silence the generator's latents sit within ~0.1 (rms) of the reference's, where the
        mouth opens they move 0.7-0.9. A threshold between the two says where to trust the portrait
        before anything is learned; the learned head only corrects it.
        """
        d = (z - z_ref.to(z.dtype)).pow(2).mean(1, keepdim=True).sqrt()
        d = F.interpolate(d, size=cells, mode="bilinear", align_corners=False)
        c = self.cfg
        logits = c.prior_gain * (d - self._thresholds(cells, d))
        # never below the value of an unchanged cell: the learned head (blinks) works against that floor
        return logits.clamp_min(-c.prior_gain * c.prior_threshold).permute(0, 2, 3, 1)

    def _thresholds(self, cells: tuple[int, int], like: torch.Tensor) -> torch.Tensor | float:
        """The threshold per cell: `prior_threshold` inside `prior_window`, `prior_threshold_outside` elsewhere.

        Why a window: every toon portrait has its mouth in the same part of the frame, and the
        one-step student's worst errors sit on the eyes (0.5-0.7 rms when the mouth opens wide);
        outside the mouth's window only a much larger change (a turned head) may redraw the picture.
        """
        c = self.cfg
        if not c.prior_window:
            return c.prior_threshold
        h, w = cells
        ys = (torch.arange(h, dtype=like.dtype) + 0.5) / h
        xs = (torch.arange(w, dtype=like.dtype) + 0.5) / w
        top, bottom, left, right = c.prior_window
        inside = ((ys >= top) & (ys <= bottom))[:, None] & ((xs >= left) & (xs <= right))[None, :]
        return torch.where(inside, c.prior_threshold, c.prior_threshold_outside)[None, None]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, ref: tuple, drive: torch.Tensor | None = None) -> np.ndarray:
        """Latents -> uint8 frames (N, S, S, 3)."""
        frame = self.forward(z, ref, drive)
        pixels = frame.add_(1.0).mul_(127.5).add_(0.5).clamp_(0, 255).to(torch.uint8)
        return from_patches(pixels, self.cfg.out_patch).cpu().numpy()

    # -- files ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        save_pair(self, self.cfg.to_dict(), path, "toon-refdecoder")

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str = "cpu") -> "RefDecoder":
        path, cfg = read_config(path, "reference decoder")
        return load_weights(cls(RefDecoderConfig(**cfg)), path, "reference decoder", map_location)


class BaseDecoder(nn.Module):
    """Scaled latents -> the per-frame autoencoder's frames in [-1, 1] (no rounding): RefDecoder's base."""

    def __init__(self, autoencoder):
        super().__init__()
        self.ae = autoencoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        cfg = self.ae.cfg
        return self.ae.decoder(z / cfg.latent_scale + cfg.latent_shift)


def to_patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """(N, 3, S, S) -> (N, S/p, S/p, p*p*3): each cell holds its p x p patch, row by row, RGB last."""
    n, c, hh, ww = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, hh // p, p, ww // p, p, c).permute(0, 1, 3, 2, 4, 5) \
        .reshape(n, hh // p, ww // p, p * p * c).contiguous()


def from_patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """(N, S/p, S/p, p*p*3) -> (N, S, S, 3): the inverse of `to_patches`."""
    n, hh, ww, _ = x.shape
    return x.reshape(n, hh, ww, p, p, 3).permute(0, 1, 3, 2, 4, 5).reshape(n, hh * p, ww * p, 3)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) or (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(image))
    if x.ndim == 3:
        x = x[None]
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

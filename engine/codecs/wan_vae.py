"""The Wan2.1 causal 3D VAE, with a streaming decoder.

The paper model ("avatarforcing-1.3b") works in the latent space of the unchanged Wan2.1 VAE. This
module rebuilds that VAE so the published ``Wan2.1_VAE.pth`` loads into it by name (our attribute
names *are* the official key names), and adds what a live stream needs: a decoder that keeps the
causal temporal cache across calls, so latent blocks can be decoded as they are emitted and the
result equals decoding the whole latent video at once.

Layouts: the public API (``WanVAE.encode``, ``StreamingDecoder.decode``) uses frames-first tensors
``(B, F, C, H, W)``, the layout of the sampler's latents. The modules inside work on the official
``(B, C, T, H, W)``.

Facts (reference spec §2.4, official ``wan/modules/vae.py``): base dim 96, multipliers (1, 2, 4, 4),
2 residual blocks per level (3 in the decoder), attention only in the middle blocks, z_dim 16, 8×
spatial and 4× temporal compression, T latents decode to 1 + 4(T − 1) frames, per-channel latent
normalisation ``(mu − mean) / std``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger(__name__)

# Causal convolutions have temporal kernel 3: each needs the last two input frames of the previous chunk.
CACHE_T = 2

WAN21_LATENT_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)
WAN21_LATENT_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)


@dataclass(frozen=True)
class WanVAEConfig:
    """Every size of the VAE. The defaults are the published Wan2.1 VAE."""

    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    latent_mean: tuple[float, ...] = field(default=WAN21_LATENT_MEAN)
    latent_std: tuple[float, ...] = field(default=WAN21_LATENT_STD)

    def __post_init__(self) -> None:
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ValueError(
                f"temporal_downsample needs {len(self.dim_mult) - 1} flags (one per resampling stage), "
                f"got {len(self.temporal_downsample)}")
        if len(self.latent_mean) != self.z_dim or len(self.latent_std) != self.z_dim:
            raise ValueError(
                f"latent_mean/latent_std need z_dim={self.z_dim} values, "
                f"got {len(self.latent_mean)}/{len(self.latent_std)}")

    @classmethod
    def tiny(cls) -> "WanVAEConfig":
        """Same structure (8× spatial, 4× temporal, 16 latent channels), a few thousand times fewer weights."""
        return cls(dim=8, dim_mult=(1, 2, 2, 2))

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(self.temporal_downsample)


class _FeatCache:
    """The causal conv cache: one slot per cached conv, visited in the same order on every chunk."""

    FIRST = "first-chunk"  # marks a temporal upsampler that has seen only the first chunk

    def __init__(self) -> None:
        self.slots: list = []
        self.index = 0

    def start_chunk(self) -> None:
        self.index = 0

    def next_slot(self) -> int:
        if self.index == len(self.slots):
            self.slots.append(None)
        self.index += 1
        return self.index - 1


class CausalConv3d(nn.Conv3d):
    """3D conv padded only on the past side in time, so frame t never sees frame t + 1.

    ``cache`` holds up to the last two input frames of the previous chunk; they replace that many
    of the zero frames of the temporal padding, which makes chunked decoding equal to one pass.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        pt, ph, pw = self.padding
        self._causal_pad = (pw, pw, ph, ph, 2 * pt, 0)
        self.padding = (0, 0, 0)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None) -> torch.Tensor:
        pad = list(self._causal_pad)
        if cache is not None and pad[4] > 0:
            x = torch.cat([cache.to(x.device, x.dtype), x], dim=2)
            pad[4] -= cache.shape[2]
        return super().forward(F.pad(x, pad))


def _cached_conv(conv: CausalConv3d, x: torch.Tensor, cache: _FeatCache | None) -> torch.Tensor:
    """Run ``conv`` on a chunk and remember the last CACHE_T frames of its input for the next chunk."""
    if cache is None:
        return conv(x)
    slot = cache.next_slot()
    previous = cache.slots[slot]
    keep = x[:, :, -CACHE_T:].clone()
    if keep.shape[2] < CACHE_T and previous is not None:
        keep = torch.cat([previous[:, :, -1:].to(keep.device), keep], dim=2)
    out = conv(x, previous)
    cache.slots[slot] = keep
    return out


class RMSNorm(nn.Module):
    """Channel RMS norm as Wan writes it: L2-normalise over channels, times sqrt(C) and a gain."""

    def __init__(self, dim: int, images: bool = True) -> None:
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim, 1, 1) if images else torch.ones(dim, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class _NearestUp2x(nn.Module):
    """2× spatial nearest upsampling, computed in fp32 (bf16 nearest was unsupported upstream)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=(2.0, 2.0), mode="nearest-exact").type_as(x)


def _frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def _batch_to_frames(x: torch.Tensor, t: int) -> torch.Tensor:
    bt, c, h, w = x.shape
    return x.reshape(bt // t, t, c, h, w).permute(0, 2, 1, 3, 4)


class Resample(nn.Module):
    """2× spatial up/down sampling, optionally with 2× temporal up/down sampling (``*3d`` modes)."""

    MODES = ("upsample2d", "upsample3d", "downsample2d", "downsample3d")

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"Resample mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        if mode.startswith("upsample"):
            # Upsampling halves the channels: the next level's first residual block expects dim // 2.
            self.resample = nn.Sequential(_NearestUp2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
            if mode == "upsample3d":
                # One conv makes two output frames per input frame (channels split in halves).
                self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=(2, 2)))
            if mode == "downsample3d":
                self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))

    def forward(self, x: torch.Tensor, cache: _FeatCache | None = None) -> torch.Tensor:
        if self.mode == "upsample3d" and cache is not None:
            x = self._upsample_time(x, cache)
        t = x.shape[2]
        x = _batch_to_frames(self.resample(_frames_to_batch(x)), t)
        if self.mode == "downsample3d" and cache is not None:
            x = self._downsample_time(x, cache)
        return x

    def _upsample_time(self, x: torch.Tensor, cache: _FeatCache) -> torch.Tensor:
        # The very first chunk (the reference frame) is not doubled: 1 latent -> 1 frame.
        slot = cache.next_slot()
        previous = cache.slots[slot]
        if previous is None:
            cache.slots[slot] = _FeatCache.FIRST
            return x
        keep = x[:, :, -CACHE_T:].clone()
        if keep.shape[2] < CACHE_T:
            # After the first chunk the official code pads with zeros, not with the first frame.
            before = torch.zeros_like(keep) if isinstance(previous, str) else previous[:, :, -1:].to(keep.device)
            keep = torch.cat([before, keep], dim=2)
        x = self.time_conv(x) if isinstance(previous, str) else self.time_conv(x, previous)
        cache.slots[slot] = keep
        b, c2, t, h, w = x.shape
        x = x.reshape(b, 2, c2 // 2, t, h, w)
        return torch.stack((x[:, 0], x[:, 1]), dim=3).reshape(b, c2 // 2, t * 2, h, w)

    def _downsample_time(self, x: torch.Tensor, cache: _FeatCache) -> torch.Tensor:
        # The first chunk (one frame) passes; later chunks are strided with the previous chunk's last frame.
        slot = cache.next_slot()
        previous = cache.slots[slot]
        keep = x[:, :, -1:].clone()
        if previous is not None:
            x = self.time_conv(torch.cat([previous[:, :, -1:].to(x.device), x], dim=2))
        cache.slots[slot] = keep
        return x


class ResidualBlock(nn.Module):
    """Two causal 3×3×3 convs with RMS norm and SiLU; the Sequential indices are the official key names."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim, images=False), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim, images=False), nn.SiLU(), nn.Dropout(dropout),
            CausalConv3d(out_dim, out_dim, 3, padding=1))
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: _FeatCache | None = None) -> torch.Tensor:
        h = self.shortcut(x)
        for layer in self.residual:
            x = _cached_conv(layer, x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head spatial self-attention, per frame (no attention across time, so it stays causal)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        b, c, t, h, w = x.shape
        y = self.norm(_frames_to_batch(x))
        qkv = self.to_qkv(y).reshape(b * t, 1, c * 3, h * w).permute(0, 1, 3, 2)
        q, k, v = qkv.contiguous().chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v)
        y = y.squeeze(1).permute(0, 2, 1).reshape(b * t, c, h, w)
        return _batch_to_frames(self.proj(y), t) + identity


def _run_middle(middle: nn.Sequential, x: torch.Tensor, cache: _FeatCache | None) -> torch.Tensor:
    for layer in middle:
        x = layer(x, cache) if isinstance(layer, ResidualBlock) else layer(x)
    return x


def _run_head(head: nn.Sequential, x: torch.Tensor, cache: _FeatCache | None) -> torch.Tensor:
    for layer in head:
        x = _cached_conv(layer, x, cache) if isinstance(layer, CausalConv3d) else layer(x)
    return x


class Encoder3d(nn.Module):
    def __init__(self, cfg: WanVAEConfig, out_channels: int) -> None:
        super().__init__()
        dims = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for level, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if level != len(cfg.dim_mult) - 1:
                mode = "downsample3d" if cfg.temporal_downsample[level] else "downsample2d"
                blocks.append(Resample(out_dim, mode))
        self.downsamples = nn.Sequential(*blocks)
        top = dims[-1]
        self.middle = nn.Sequential(ResidualBlock(top, top), AttentionBlock(top), ResidualBlock(top, top))
        self.head = nn.Sequential(RMSNorm(top, images=False), nn.SiLU(), CausalConv3d(top, out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: _FeatCache | None = None) -> torch.Tensor:
        x = _cached_conv(self.conv1, x, cache)
        for layer in self.downsamples:
            x = layer(x, cache)
        return _run_head(self.head, _run_middle(self.middle, x, cache), cache)


class Decoder3d(nn.Module):
    def __init__(self, cfg: WanVAEConfig) -> None:
        super().__init__()
        mult = cfg.dim_mult
        dims = [cfg.dim * m for m in (mult[-1], *mult[::-1])]
        temporal_upsample = cfg.temporal_downsample[::-1]
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(
            ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]), ResidualBlock(dims[0], dims[0]))
        blocks: list[nn.Module] = []
        for level, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if level > 0:
                in_dim //= 2  # the previous level's Resample halved the channels
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if level != len(mult) - 1:
                mode = "upsample3d" if temporal_upsample[level] else "upsample2d"
                blocks.append(Resample(out_dim, mode))
        self.upsamples = nn.Sequential(*blocks)
        self.head = nn.Sequential(RMSNorm(dims[-1], images=False), nn.SiLU(), CausalConv3d(dims[-1], 3, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: _FeatCache | None = None) -> torch.Tensor:
        x = _cached_conv(self.conv1, x, cache)
        x = _run_middle(self.middle, x, cache)
        for layer in self.upsamples:
            x = layer(x, cache)
        return _run_head(self.head, x, cache)


class WanVAE(nn.Module):
    """The Wan2.1 VAE. ``state_dict()`` keys and shapes equal those of the official ``Wan2.1_VAE.pth``."""

    def __init__(self, config: WanVAEConfig | None = None) -> None:
        super().__init__()
        self.config = config or WanVAEConfig()
        z = self.config.z_dim
        self.encoder = Encoder3d(self.config, z * 2)
        self.conv1 = CausalConv3d(z * 2, z * 2, 1)
        self.conv2 = CausalConv3d(z, z, 1)
        self.decoder = Decoder3d(self.config)

    def _scale(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, 1/std) shaped for (B, C, T, H, W), cast to the input dtype as the authors' wrapper does."""
        mean = torch.tensor(self.config.latent_mean, dtype=torch.float32)
        inv_std = 1.0 / torch.tensor(self.config.latent_std, dtype=torch.float32)
        shape = (1, self.config.z_dim, 1, 1, 1)
        return (mean.view(shape).to(like.device, like.dtype), inv_std.view(shape).to(like.device, like.dtype))

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [-1, 1], T = 1 + 4k -> normalised latent mean (B, 1 + k, z_dim, H/8, W/8).

        Frames go through the encoder in causal chunks 1, 4, 4, ... like the official code; the
        log-variance half is dropped (the mean is used deterministically).
        """
        if video.dim() != 5 or video.shape[2] != 3:
            raise ValueError(f"encode expects video (B, T, 3, H, W), got shape {tuple(video.shape)}")
        tf, sf = self.config.temporal_factor, self.config.spatial_factor
        t, h, w = video.shape[1], video.shape[3], video.shape[4]
        if (t - 1) % tf != 0 or h % sf or w % sf:
            raise ValueError(
                f"encode needs T = 1 + {tf}k frames and H, W divisible by {sf}; got T={t}, H={h}, W={w}")
        x = video.permute(0, 2, 1, 3, 4)
        cache = _FeatCache()
        chunks = [x[:, :, :1]] + [x[:, :, 1 + tf * i: 1 + tf * (i + 1)] for i in range((t - 1) // tf)]
        outs = []
        for chunk in chunks:
            cache.start_chunk()
            outs.append(self.encoder(chunk, cache))
        mu = self.conv1(torch.cat(outs, dim=2))[:, : self.config.z_dim]
        mean, inv_std = self._scale(mu)
        return ((mu - mean) * inv_std).permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Whole latent video (B, F, z_dim, h, w) -> frames (B, 1 + 4(F − 1), 3, 8h, 8w) in [-1, 1]."""
        decoder = StreamingDecoder(self)
        return decoder.decode(latents)


class StreamingDecoder:
    """Decodes latent blocks as they arrive, carrying the causal cache between calls.

    After ``reset()`` the first latent frame gives one video frame and every later one gives
    ``temporal_factor`` (4). Decoding a latent video block by block gives the same frames as
    decoding it in one call, because the official decoder already runs one latent frame at a time
    with this cache (spec §2.4); we just keep the cache alive between calls.
    """

    def __init__(self, vae: WanVAE) -> None:
        self.vae = vae
        self.reset()

    def reset(self) -> None:
        """Start a new video: the next latent is treated as the reference frame."""
        self._cache = _FeatCache()
        self.latents_seen = 0

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, F, z_dim, h, w) normalised latents -> (B, F_out, 3, 8h, 8w) frames clamped to [-1, 1]."""
        cfg = self.vae.config
        if latents.dim() != 5 or latents.shape[2] != cfg.z_dim:
            raise ValueError(
                f"decode expects latents (B, F, {cfg.z_dim}, h, w), got shape {tuple(latents.shape)}")
        z = latents.permute(0, 2, 1, 3, 4)
        mean, inv_std = self.vae._scale(z)
        x = self.vae.conv2(z / inv_std + mean)
        outs = []
        for i in range(x.shape[2]):
            self._cache.start_chunk()
            outs.append(self.vae.decoder(x[:, :, i: i + 1], self._cache))
        self.latents_seen += x.shape[2]
        return torch.cat(outs, dim=2).clamp_(-1.0, 1.0).permute(0, 2, 1, 3, 4)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Match ``state`` to ``model`` by name and shape, or raise one ValueError that lists every problem.

    A tensor whose shape differs from ours only by size-1 axes (some repackaged files store the
    RMS-norm gains as (C,)) is reshaped rather than rejected. Returns the state ready to load.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped, ready = [], {}
    for key in sorted(set(expected) & set(state)):
        tensor, want = state[key], expected[key]
        if tuple(tensor.shape) != want:
            if [s for s in tensor.shape if s != 1] == [s for s in want if s != 1]:
                tensor = tensor.reshape(want)
            else:
                misshaped.append(f"{key}: file {tuple(tensor.shape)} vs model {want}")
                continue
        ready[key] = tensor
    if missing or unexpected or misshaped:
        def show(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
        parts = [f"{len(missing)} missing ({show(missing)})" if missing else "",
                 f"{len(unexpected)} unexpected ({show(unexpected)})" if unexpected else "",
                 f"{len(misshaped)} with the wrong shape ({show(misshaped)})" if misshaped else ""]
        raise ValueError("state dict does not fit the Wan VAE: " + "; ".join(p for p in parts if p))
    return ready


def load_wan_vae(path: str | os.PathLike, config: WanVAEConfig | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> WanVAE:
    """Load ``Wan2.1_VAE.pth`` (a plain state dict) safely (``weights_only=True``) with a strict key check."""
    state = torch.load(os.fspath(path), map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict (mapping of tensors), got {type(state).__name__}")
    with torch.device("meta"):
        model = WanVAE(config)
    ready = check_state_dict(model, state)
    model.load_state_dict(ready, strict=True, assign=True)
    log.info("loaded Wan VAE from %s (%d tensors)", path, len(ready))
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)

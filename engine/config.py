"""Dataclass configs for the model and the stream, with a YAML round trip.

Every size the engine uses comes from here (or from tensor shapes): nothing assumes the 1.3B
model's 1560 tokens per frame, 12 heads or 4 video frames per latent frame.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SAMPLE_RATE = 16000  # Hz, mono float32: what every audio encoder hears and every model card assumes


@dataclass
class ModelConfig:
    """Architecture of the causal DiT (Wan2.1 layout; attribute names follow the official keys).

    The defaults are the paper's 1.3B student (`paper()`); the toon model and the test sizes state
    their own, and a model card always writes every field.
    """

    dim: int = 1536
    num_heads: int = 12
    num_layers: int = 30
    ffn_dim: int = 8960
    in_dim: int = 33            # noisy latent + reference latent + mask
    out_dim: int = 16           # latent channels (flow prediction)
    text_dim: int = 4096        # 0 = no text cross-attention (our small models)
    text_len: int = 512
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    audio_dim: int = 10752      # feature size of one video frame
    audio_pack: int = 4         # video frames per latent frame (audio rows packed into one token)
    audio_hidden: int = 32
    audio_first_block: int = 2  # audio is added before blocks first..num_layers//2 (the authors' choice)
    rope_theta: float = 10000.0
    ffn_gelu: str = "tanh"      # Wan's tanh approximation; "none" (exact erf) is 4x cheaper on CPU

    def __post_init__(self) -> None:
        if self.ffn_gelu not in ("tanh", "none"):
            raise ValueError(f"ffn_gelu must be 'tanh' or 'none', got {self.ffn_gelu!r}")
        self.patch_size = tuple(int(p) for p in self.patch_size)  # type: ignore[assignment]
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.in_dim != 2 * self.out_dim + 1:
            raise ValueError(
                f"in_dim must be 2*out_dim+1 (noisy latent, reference latent, mask); got in_dim={self.in_dim}, "
                f"out_dim={self.out_dim}")
        if self.patch_size[0] != 1:
            raise ValueError(f"temporal patch size must be 1 (one token row per latent frame), got {self.patch_size}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def audio_blocks(self) -> list[int]:
        """Indices of the blocks whose input receives the audio tokens."""
        return list(range(self.audio_first_block, self.num_layers // 2 + 1))

    @property
    def has_text(self) -> bool:
        return self.text_dim > 0

    @classmethod
    def paper(cls) -> "ModelConfig":
        """The AvatarForcing 1.3B student (Wan2.1-T2V-1.3B + audio)."""
        return cls()

    @classmethod
    def tiny(cls) -> "ModelConfig":
        """The configuration of the authors' recorded parity run (reference/official_tiny)."""
        return cls(dim=64, num_heads=2, num_layers=6, ffn_dim=128, in_dim=33, out_dim=16, text_dim=32,
                   text_len=16, freq_dim=32, audio_dim=56, audio_pack=4, audio_hidden=8)

    @classmethod
    def micro(cls) -> "ModelConfig":
        """Smallest useful config for fast tests: few channels, no text."""
        return cls(dim=32, num_heads=2, num_layers=4, ffn_dim=64, in_dim=9, out_dim=4, text_dim=0, text_len=0,
                   freq_dim=16, audio_dim=12, audio_pack=1, audio_hidden=8)


@dataclass
class StreamConfig:
    """How the sampler walks the stream: block size B, window L (= number of levels), passes N, anchors."""

    block_frames: int = 4                                   # B: latent frames per block
    timesteps: tuple[float, ...] = (1000, 800, 400, 200)     # L levels, noisiest first (before warping)
    passes: int = 1                                          # N: model calls per window step
    warp: bool = True                                        # map through the shifted schedule table
    shift: float = 5.0
    num_train_timesteps: int = 1000
    context_noise: float = 0.0                               # timestep label of the cache-update call
    style_anchor: bool = True                                # keep the reference frame's keys in the cache
    rope_reindex: bool = True                                # rotate the anchor to sit just before the window
    anchor_audio_zero: bool = True                           # the anchor frame hears silence (zero features)
    temporal_frames: int = 2                                 # clean frames kept as the temporal anchor (0 = off)
    kv_cache: bool = True                                    # False: recompute the context every window
    official_update_anchor: bool = False                     # reproduce the authors' update-call anchor at frame 0

    def __post_init__(self) -> None:
        self.timesteps = tuple(float(t) for t in self.timesteps)
        if self.block_frames < 1:
            raise ValueError(f"block_frames must be >= 1, got {self.block_frames}")
        if self.passes < 1:
            raise ValueError(f"passes must be >= 1, got {self.passes}")
        if not self.timesteps:
            raise ValueError("timesteps must list at least one level")
        if any(a <= b for a, b in zip(self.timesteps, self.timesteps[1:])):
            raise ValueError(f"timesteps must be strictly decreasing (noisiest first), got {list(self.timesteps)}")
        if not all(0 < t <= self.num_train_timesteps for t in self.timesteps):
            raise ValueError(f"timesteps must lie in (0, {self.num_train_timesteps}], got {list(self.timesteps)}")
        if self.temporal_frames < 0:
            raise ValueError(f"temporal_frames must be >= 0, got {self.temporal_frames}")

    @property
    def window_blocks(self) -> int:
        """L: blocks denoised together in one window."""
        return len(self.timesteps)


def to_dict(cfg: Any) -> dict:
    """Plain dict for YAML (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def from_dict(cls: type, data: dict) -> Any:
    """Build a config dataclass, naming unknown keys instead of ignoring them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; allowed: {sorted(names)}")
    return cls(**data)


def replace(cfg: Any, **changes: Any) -> Any:
    return dataclasses.replace(cfg, **changes)


__all__ = ["ModelConfig", "StreamConfig", "to_dict", "from_dict", "replace", "field"]

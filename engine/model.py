"""The causal video DiT in the Wan2.1 layout, with the AvatarForcing audio path.

The model is stateless: every call gets the frames it denoises plus, per layer, the keys and values
it may attend to besides them (the anchors, un-rotated, with their frame positions). Which frames
those are is the cache's business (`engine.cache`); the model only rotates and attends. Attribute
names are the official checkpoint's keys, so the authors' weights load by name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .rope import Rotation, rotation


@dataclass
class Memory:
    """Extra keys/values per layer (un-rotated keys) and the frame position of each of their frames."""

    k: list[torch.Tensor]      # per layer (batch, frames*S, heads, head_dim)
    v: list[torch.Tensor]
    frame_pos: torch.Tensor    # (frames,)

    @property
    def frames(self) -> int:
        return int(self.frame_pos.numel())


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[cos, sin] timestep features in float64 (the Wan order and precision)."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    angles = t.to(torch.float64)[..., None] * freqs
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Projections(nn.Module):
    """q, k, v, o linears with RMS-normed q and k (over all heads at once, as Wan does)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.q, self.k, self.v, self.o = (nn.Linear(cfg.dim, cfg.dim) for _ in range(4))
        self.norm_q = RMSNorm(cfg.dim, cfg.eps)
        self.norm_k = RMSNorm(cfg.dim, cfg.eps)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, dim) -> (batch, tokens, heads, head_dim)."""
        return x.view(*x.shape[:2], self.heads, self.head_dim)

    def merge(self, out: torch.Tensor) -> torch.Tensor:
        """SDPA output (batch, heads, tokens, head_dim) -> projected (batch, tokens, dim)."""
        return self.o(out.transpose(1, 2).flatten(2))


class SelfAttention(Projections):
    def forward(self, x: torch.Tensor, rot: Rotation, mem_k: torch.Tensor | None, mem_v: torch.Tensor | None,
                mem_rot: Rotation | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attend over [memory, own tokens], no mask; returns (out, own un-rotated k, own v) for the cache."""
        q = self.split(self.norm_q(self.q(x)))
        k = self.split(self.norm_k(self.k(x)))
        v = self.split(self.v(x))
        keys, values = rot(k), v
        if mem_k is not None and mem_k.shape[1]:
            keys = torch.cat([mem_rot(mem_k), keys], dim=1)
            values = torch.cat([mem_v, values], dim=1)
        out = F.scaled_dot_product_attention(rot(q).transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2))
        return self.merge(out), k, v


class CrossAttention(Projections):
    """Attention to the text context; its keys/values are computed once per stream (`text_kv`)."""

    def context_kv(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.split(self.norm_k(self.k(ctx))).transpose(1, 2)
        v = self.split(self.v(ctx)).transpose(1, 2)
        return k, v

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        q = self.split(self.norm_q(self.q(x))).transpose(1, 2)
        return self.merge(F.scaled_dot_product_attention(q, *kv))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(cfg)
        if cfg.has_text:
            self.norm3 = nn.LayerNorm(cfg.dim, eps=cfg.eps, elementwise_affine=True)
            self.cross_attn = CrossAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(cfg.dim, cfg.ffn_dim), nn.GELU(approximate=cfg.ffn_gelu),
                                 nn.Linear(cfg.ffn_dim, cfg.dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, cfg.dim) / cfg.dim ** 0.5)

    def forward(self, x: torch.Tensor, e0: torch.Tensor, frames: int, rot: Rotation,
                mem_k: torch.Tensor | None, mem_v: torch.Tensor | None, mem_rot: Rotation | None,
                text_kv: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (batch, frames*S, dim); e0: (batch, frames, 6, dim) per-frame modulation."""
        b, n, d = x.shape
        m = (self.modulation[:, None] + e0)[:, :, :, None, :]          # (b, F, 6, 1, d)
        per_frame = lambda t: t.view(b, frames, n // frames, d)          # noqa: E731
        h = modulate(per_frame(self.norm1(x)), m[:, :, 0], m[:, :, 1]).view(b, n, d)
        y, k, v = self.self_attn(h, rot, mem_k, mem_v, mem_rot)
        x = x + (per_frame(y) * m[:, :, 2]).view(b, n, d)
        if text_kv is not None:
            x = x + self.cross_attn(self.norm3(x), text_kv)
        h = modulate(per_frame(self.norm2(x)), m[:, :, 3], m[:, :, 4]).view(b, n, d)
        x = x + (per_frame(self.ffn(h)) * m[:, :, 5]).view(b, n, d)
        return x, k, v


class Head(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.eps, elementwise_affine=False)
        self.head = nn.Linear(cfg.dim, cfg.out_dim * math.prod(cfg.patch_size))
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim ** 0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor, frames: int) -> torch.Tensor:
        b, n, d = x.shape
        m = (self.modulation[:, None] + e[:, :, None])[:, :, :, None, :]   # (b, F, 2, 1, d)
        h = modulate(self.norm(x).view(b, frames, n // frames, d), m[:, :, 0], m[:, :, 1])
        return self.head(h.view(b, n, d))


class AudioPack(nn.Module):
    """Packs `audio_pack` consecutive per-video-frame feature rows into one token per latent frame."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pack = cfg.audio_pack
        self.proj = nn.Linear(cfg.audio_dim * cfg.audio_pack, cfg.audio_hidden)
        self.norm_out = nn.LayerNorm(cfg.audio_hidden)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        b, r, d = rows.shape
        return self.norm_out(self.proj(rows.reshape(b, r // self.pack, self.pack * d)))


class CausalDiT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_dim, d, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        if cfg.has_text:
            self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"),
                                                nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.head = Head(cfg)
        self.audio_proj = AudioPack(cfg)
        self.audio_cond_projs = nn.ModuleList(nn.Linear(cfg.audio_hidden, d) for _ in cfg.audio_blocks)
        self._rotations: dict[tuple, Rotation] = {}

    def _rotation(self, frame_pos: torch.Tensor, grid: tuple[int, int], dtype: torch.dtype,
                  device: torch.device) -> Rotation:
        """cos/sin tables, memoised: a running stream reuses the same few position sets every step."""
        key = (tuple(frame_pos.tolist()), grid, dtype, str(device))
        rot = self._rotations.get(key)
        if rot is None:
            if len(self._rotations) >= 64:   # bounded: ablations with drifting positions never grow it
                self._rotations.clear()
            rot = self._rotations[key] = rotation(frame_pos, grid, self.cfg.head_dim, self.cfg.rope_theta,
                                                  dtype, device)
        return rot

    # -- inputs -------------------------------------------------------------------------------------
    def grid(self, height: int, width: int) -> tuple[int, int]:
        _, ph, pw = self.cfg.patch_size
        if height % ph or width % pw:
            raise ValueError(f"latent size {height}x{width} is not divisible by the patch {ph}x{pw}")
        return height // ph, width // pw

    def text_kv(self, context: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Per-layer cross-attention keys/values of the prompt: computed once per stream."""
        if not self.cfg.has_text:
            return None
        if context is None:
            raise ValueError(f"this model needs a text context of shape (batch, {self.cfg.text_len}, "
                             f"{self.cfg.text_dim}); got None")
        if context.ndim != 3 or context.shape[-1] != self.cfg.text_dim:
            raise ValueError(f"text context must be (batch, tokens, {self.cfg.text_dim}); got {tuple(context.shape)}")
        ctx = self.text_embedding(context.to(self.patch_embedding.weight.dtype))
        return [blk.cross_attn.context_kv(ctx) for blk in self.blocks]

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patchify (batch, F, C, H, W) -> tokens (batch, F*gh*gw, dim) in (f, h, w) order, as a matmul."""
        b, f, c, h, w = x.shape
        _, ph, pw = self.cfg.patch_size
        gh, gw = h // ph, w // pw
        patches = x.view(b, f, c, gh, ph, gw, pw).permute(0, 1, 3, 5, 2, 4, 6).reshape(b, f * gh * gw, c * ph * pw)
        weight = self.patch_embedding.weight.reshape(self.cfg.dim, -1)
        return F.linear(patches, weight, self.patch_embedding.bias)

    def _unpatchify(self, out: torch.Tensor, f: int, gh: int, gw: int) -> torch.Tensor:
        b = out.shape[0]
        _, ph, pw = self.cfg.patch_size
        c = self.cfg.out_dim
        return out.view(b, f, gh, gw, ph, pw, c).permute(0, 1, 6, 2, 4, 3, 5).reshape(b, f, c, gh * ph, gw * pw)

    def _check(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, audio: torch.Tensor) -> None:
        cfg = self.cfg
        if x.ndim != 5 or x.shape[2] != cfg.out_dim:
            raise ValueError(f"latents must be (batch, frames, {cfg.out_dim}, h, w); got {tuple(x.shape)}")
        want_cond = (x.shape[0], x.shape[1], cfg.in_dim - cfg.out_dim, *x.shape[3:])
        if tuple(cond.shape) != want_cond:
            raise ValueError(f"conditioning must be {want_cond}; got {tuple(cond.shape)}")
        if tuple(t.shape) != tuple(x.shape[:2]):
            raise ValueError(f"timesteps must be (batch, frames) = {tuple(x.shape[:2])}; got {tuple(t.shape)}")
        want_audio = (x.shape[0], x.shape[1] * cfg.audio_pack, cfg.audio_dim)
        if tuple(audio.shape) != want_audio:
            raise ValueError(f"audio features must be (batch, frames*{cfg.audio_pack}, {cfg.audio_dim}) = "
                             f"{want_audio}; got {tuple(audio.shape)}")

    # -- forward ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, audio: torch.Tensor,
                frame_pos: torch.Tensor, memory: Memory | None = None,
                text_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None, return_kv: bool = True,
                ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Predict the flow (noise - x0) of every frame.

        x: (batch, F, out_dim, h, w) noisy latents; cond: (batch, F, in_dim-out_dim, h, w);
        t: (batch, F) per-frame timesteps; audio: (batch, F*audio_pack, audio_dim);
        frame_pos: (F,) rotary frame positions; memory: anchor keys/values to attend to.
        Returns (flow, per-layer un-rotated keys, per-layer values) of the F frames, for the cache
        (empty lists with return_kv=False, so a denoising call does not hold every layer's keys).
        """
        self._check(x, cond, t, audio)
        if self.cfg.has_text and text_kv is None:
            raise ValueError("this model has text cross-attention: pass text_kv=model.text_kv(context)")
        b, f = x.shape[:2]
        gh, gw = self.grid(*x.shape[3:])
        dtype = self.patch_embedding.weight.dtype
        tokens = self._embed(torch.cat([x, cond], dim=2).to(dtype))
        e = self.time_embedding(sinusoidal(t, self.cfg.freq_dim).to(dtype))        # (b, F, d)
        e0 = self.time_projection(e).unflatten(-1, (6, self.cfg.dim))               # (b, F, 6, d)
        rot = self._rotation(frame_pos, (gh, gw), dtype, x.device)
        mem_rot = None
        if memory is not None and memory.frames:
            mem_rot = self._rotation(memory.frame_pos, (gh, gw), dtype, x.device)
        audio_tok = self.audio_proj(audio.to(dtype))                                  # (b, F, hidden)
        first = self.cfg.audio_first_block
        keys, values = [], []
        for i, blk in enumerate(self.blocks):
            if first <= i < first + len(self.audio_cond_projs):
                add = self.audio_cond_projs[i - first](audio_tok)                     # (b, F, d)
                tokens = (tokens.view(b, f, gh * gw, -1) + add[:, :, None]).view(b, f * gh * gw, -1)
            mk = memory.k[i] if mem_rot is not None else None
            mv = memory.v[i] if mem_rot is not None else None
            tokens, k, v = blk(tokens, e0, f, rot, mk, mv, mem_rot, text_kv[i] if text_kv is not None else None)
            if return_kv:
                keys.append(k)
                values.append(v)
        flow = self._unpatchify(self.head(tokens, e, f), f, gh, gw)
        return flow, keys, values

    def tokens_per_frame(self, height: int, width: int) -> int:
        gh, gw = self.grid(height, width)
        return gh * gw

"""3-D rotary position embedding (time, height, width), computed for any positions on the fly.

No position table: the authors' 1024-entry table is why their streams die after 255 blocks. Angles
are computed in float64 from whatever (possibly negative, re-based) frame positions the cache asks
for, so a stream that keeps its positions relative never loses precision however long it runs.
"""
from __future__ import annotations

import torch


def axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """Complex pairs per axis (t, h, w): the Wan split, e.g. 128 -> (22, 21, 21), 32 -> (6, 5, 5)."""
    spatial = 2 * (head_dim // 6)
    return ((head_dim - 2 * spatial) // 2, spatial // 2, spatial // 2)


def _inv_freq(pairs: int, theta: float) -> torch.Tensor:
    return theta ** (-torch.arange(pairs, dtype=torch.float64) * 2 / (2 * pairs))


def rope_angles(frame_pos: torch.Tensor, grid: tuple[int, int], head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Angles (tokens, head_dim/2) float64 for frames at `frame_pos`, tokens in (frame, row, col) order."""
    pt, ph, pw = axis_pairs(head_dim)
    gh, gw = grid
    frame_pos = frame_pos.to(torch.float64).flatten()
    t = frame_pos[:, None] * _inv_freq(pt, theta)[None]                          # (F, pt)
    h = torch.arange(gh, dtype=torch.float64)[:, None] * _inv_freq(ph, theta)    # (gh, ph)
    w = torch.arange(gw, dtype=torch.float64)[:, None] * _inv_freq(pw, theta)    # (gw, pw)
    n_f = frame_pos.numel()
    ang = torch.cat([
        t[:, None, None, :].expand(n_f, gh, gw, pt),
        h[None, :, None, :].expand(n_f, gh, gw, ph),
        w[None, None, :, :].expand(n_f, gh, gw, pw),
    ], dim=-1)
    return ang.reshape(n_f * gh * gw, pt + ph + pw)


class Rotation:
    """cos/sin of a set of angles, ready to rotate (batch, tokens, heads, head_dim) tensors."""

    def __init__(self, angles: torch.Tensor, dtype: torch.dtype, device: torch.device | str):
        self.cos = torch.cos(angles).to(dtype=dtype, device=device)[None, :, None, :]
        self.sin = torch.sin(angles).to(dtype=dtype, device=device)[None, :, None, :]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate consecutive pairs (2i, 2i+1) of the last dim, as complex numbers."""
        pairs = x.unflatten(-1, (-1, 2))
        re, im = pairs[..., 0], pairs[..., 1]
        out = torch.stack((re * self.cos - im * self.sin, re * self.sin + im * self.cos), dim=-1)
        return out.flatten(-2)


def rotation(frame_pos: torch.Tensor, grid: tuple[int, int], head_dim: int, theta: float,
             dtype: torch.dtype, device: torch.device | str) -> Rotation:
    return Rotation(rope_angles(frame_pos, grid, head_dim, theta), dtype, device)

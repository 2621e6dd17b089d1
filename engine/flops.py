"""Analytic FLOPs of the model's calls, and which calls one steady-state stream step makes.

Why from the config and not a profiler: the count is exact for any size (the 1.3B model on a
machine that cannot run it, the toon model at any resolution), costs nothing, and the benchmark
checks it against the calls the sampler really made. Multiply-adds count 2; norms, RoPE and
modulation are left out.
"""
from __future__ import annotations

import math

from engine.config import ModelConfig, StreamConfig


def call_flops(cfg: ModelConfig, frames: int, memory_frames: int, tokens_per_frame: int,
               batch: int = 1) -> dict[str, int]:
    """Multiply-add FLOPs (2 per MAC) of one model call, by part; norms, RoPE and modulation are left out."""
    s, d, layers = tokens_per_frame, cfg.dim, cfg.num_layers
    t = frames * s                               # query tokens
    k = t + memory_frames * s                    # keys attended to
    patch = math.prod(cfg.patch_size)
    parts = {
        "patch_embed": 2 * t * cfg.in_dim * patch * d,
        "time_embed": 2 * frames * (cfg.freq_dim * d + d * d + d * 6 * d),
        "audio": 2 * frames * (cfg.audio_pack * cfg.audio_dim * cfg.audio_hidden
                               + len(cfg.audio_blocks) * cfg.audio_hidden * d),
        "qkvo": layers * 2 * t * 4 * d * d,
        "attention": layers * 4 * t * k * d,     # QK^T and AV
        "ffn": layers * 2 * 2 * t * d * cfg.ffn_dim,
        "cross_attention": layers * (2 * 2 * t * d * d + 4 * t * cfg.text_len * d) if cfg.has_text else 0,
        "head": 2 * t * d * cfg.out_dim * patch,
    }
    return {name: batch * v for name, v in parts.items()}


def steady_calls(stream: StreamConfig, variant: str) -> list[tuple[str, int, int]]:
    """(kind, query frames, memory frames) of one steady-state step, derived from the algorithm."""
    b, n, w = stream.block_frames, stream.passes, stream.window_blocks
    anchor = 1 if stream.style_anchor else 0
    tf = stream.temporal_frames
    if variant == "cached":
        update = [("update", b, anchor + tf)] if tf else []
        return [("denoise", w * b, anchor + tf)] * n + update
    if variant == "no_kv_cache":
        context = [("context", b, anchor)] if tf else []
        return [("prefill", 1, 0)] + context + [("denoise", w * b, anchor + min(tf, b))] * n
    if variant == "self_forcing":
        update = [("update", b, anchor + tf)] if tf else []
        return [("denoise", b, anchor + tf)] * (w * n) + update
    raise ValueError(f"variant must be 'cached', 'no_kv_cache' or 'self_forcing'; got {variant!r}")


def step_flops(cfg: ModelConfig, calls: list[tuple[str, int, int]], tokens_per_frame: int) -> int:
    return sum(sum(call_flops(cfg, f, m, tokens_per_frame).values()) for _, f, m in calls)

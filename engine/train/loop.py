"""What every training stage's loop shares: optimiser, warm-up, the resumable state, the CLI.

Why here and not in each stage: resume must restore exactly the same things in every stage
(step, weights, optimiser moments), and the command lines must read alike.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from engine.train.dist import Dist, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOSSES = "losses.jsonl"


def adamw(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay)


def set_lr(opt: torch.optim.Optimizer, base: float, step: int, warmup: int) -> float:
    """Linear warm-up to `base`, then constant (short runs: no decay to waste)."""
    lr = base * min(1.0, (step + 1) / max(1, warmup))
    for group in opt.param_groups:
        group["lr"] = lr
    return lr


def clip_and_step(opt: torch.optim.Optimizer, params, clip: float, d: Dist) -> float:
    """Average gradients over ranks, clip, step; returns the gradient norm (before clipping)."""
    params = [p for p in params if p.requires_grad]
    d.average_gradients(params)
    norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(norm)


def resume_state(out: Path, resume: bool) -> dict | None:
    if not resume:
        if (out / CHECKPOINT).exists():
            raise ValueError(f"{out} already holds a checkpoint: pass --resume to continue it or choose another --out")
        return None
    state = load_checkpoint(out / CHECKPOINT)
    if state is None:
        log.info("no checkpoint in %s: starting from step 0", out)
    else:
        log.info("resuming %s at step %d", out, state["step"])
    return state


def save_state(out: Path, step: int, d: Dist, **parts) -> None:
    """parts: name -> module or optimiser (state_dict taken here)."""
    state = {"step": step, **{k: v.state_dict() for k, v in parts.items()}}
    save_checkpoint(out / CHECKPOINT, state, d)


def stage_parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--config", help="recipe YAML (defaults: the toon recipe)")
    p.add_argument("--out", required=True, help="output folder of this stage")
    p.add_argument("--data", required=True, help="data set folder (python -m engine.train.data)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--steps", type=int, help="override the recipe's step count")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    return p

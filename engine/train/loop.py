"""What every training stage's loop shares: optimiser, warm-up, the resumable state, the plain
one-optimiser step loop, the final weights, the CLI.

Why here and not in each stage: resume must restore exactly the same things in every stage
(step, weights, optimiser moments), and the command lines must read alike.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Callable

import torch

from engine.checkpoints import save_weights
from engine.files import atomic_write_text
from engine.train.dist import Dist, JsonlLog, generator, load_checkpoint, save_checkpoint, setup, teardown
from engine.train.recipe import Recipe, load_recipe, replace_section

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


def restore_state(out: Path, resume: bool, **parts) -> int:
    """The step to start from; with a checkpoint, loads each part (name -> module or optimiser) from it."""
    state = resume_state(out, resume)
    if state is None:
        return 0
    for name, part in parts.items():
        part.load_state_dict(state[name])
    return state["step"]


def write_recipe(out: Path, recipe: Recipe, d: Dist) -> None:
    """Each stage's folder keeps the recipe it ran with (readable by all, like the loss log)."""
    if d.is_main:
        atomic_write_text(out / "recipe.yaml", recipe.to_yaml(), mode=0o644)


def train_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, cfg: Any, out: Path, start: int, d: Dist,
                desc: str, loss_fn: Callable[[int, torch.Generator], tuple[torch.Tensor, dict[str, Any]]]) -> None:
    """Steps start..cfg.steps of a one-model, one-optimiser stage (teacher, ODE backfill).

    loss_fn(step, gen) returns the loss and extra values to log; gen is the step's own generator,
    so a resumed run draws exactly what the uninterrupted run drew. cfg needs steps, lr, warmup,
    grad_clip, log_every, ckpt_every and seed.
    """
    losses = JsonlLog(out / LOSSES, d)
    bar = d.progress(cfg.steps, start, desc)
    for step in range(start, cfg.steps):
        gen = generator(cfg.seed, step, d.rank)
        lr = set_lr(opt, cfg.lr, step, cfg.warmup)
        loss, extra = loss_fn(step, gen)
        loss.backward()
        norm = clip_and_step(opt, model.parameters(), cfg.grad_clip, d)
        mean_loss = d.mean(loss.detach())
        if (step + 1) % cfg.log_every == 0 or step == start:
            losses.write(step + 1, loss=mean_loss, grad_norm=norm, lr=lr, **extra)
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.4f}")
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            save_state(out, step + 1, d, model=model, optimizer=opt)
    bar.close()


def save_final(model: torch.nn.Module, path: Path, d: Dist, what: str) -> Path:
    """Check every rank ended with the same weights, write them once, and wait for the write."""
    d.assert_in_sync(model, what)
    if d.is_main:
        save_weights(model, path)
    d.barrier()
    return path


def stage_parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--config", help="recipe YAML (defaults: the toon recipe)")
    p.add_argument("--out", required=True, help="output folder of this stage")
    p.add_argument("--data", required=True, help="data set folder (python -m engine.train.data)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--steps", type=int, help="override the recipe's step count")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    return p


def run_stage(args: argparse.Namespace, section: str, train: Callable[[Recipe, Dist], object]) -> None:
    """A stage's command: the recipe (with --steps applied to `section`), the process group, train."""
    recipe = load_recipe(args.config)
    if args.steps is not None:
        recipe = replace_section(recipe, section, steps=args.steps)
    d = setup(args.device, threads=recipe.threads or None)
    try:
        train(recipe, d)
    finally:
        teardown(d)

"""The bidirectional multi-step teacher: flow matching over whole clips, sampled by an Euler ODE.

Why the same CausalDiT class: with memory=None the model attends over every frame it is given,
so it is a bidirectional video model; the student is then initialised from the teacher's weights
and only has to learn to work inside a sliding window with anchors.

A teacher call sees [reference frame (t=0, mask 0, silent audio), F generated frames (mask 1)]
at frame positions 0..F, every frame conditioned on the reference latent. Training draws sigma
from the shifted table (one level per clip or, with probability `block_noise`, one per block so
the teacher also scores windows whose blocks sit at different levels).

    python -m engine.train.teacher --config recipe.yaml --data runs/toon/data --out runs/toon/teacher
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.checkpoints import load_weights
from engine.config import StreamConfig
from engine.model import CausalDiT
from engine.sampler import reference_cond
from engine.schedule import FlowSchedule, schedule_for
from engine.train.data import LatentClips, mouth_weight, resolve
from engine.train.dist import Dist, generator
from engine.train.loop import adamw, restore_state, run_stage, save_final, stage_parser, train_steps, write_recipe
from engine.train.recipe import Recipe, TeacherConfig

log = logging.getLogger(__name__)

WEIGHTS = "teacher.safetensors"


def with_reference(ref: torch.Tensor, x: torch.Tensor, audio: torch.Tensor, t: torch.Tensor):
    """Prepend the reference frame: (x, cond, t, audio, frame_pos) for a whole-clip call."""
    b, f = x.shape[:2]
    frames = torch.cat([ref[:, None].to(x.dtype), x], dim=1)
    cond = torch.cat([reference_cond(ref, 1, anchor=True), reference_cond(ref, f)], dim=1).to(x.dtype)
    tt = torch.cat([t.new_zeros(b, 1), t.to(torch.float32)], dim=1)
    aa = torch.cat([audio.new_zeros(b, 1, audio.shape[-1]), audio], dim=1)
    pos = torch.arange(f + 1, dtype=torch.float64)
    return frames, cond, tt, aa, pos


def clip_flow(model: CausalDiT, ref: torch.Tensor, x: torch.Tensor, audio: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Flow prediction (b, F, C, h, w) for the F generated frames of a clip at per-frame timesteps t (b, F)."""
    if model.cfg.audio_pack != 1:
        raise ValueError(f"the teacher path expects one audio row per latent frame; audio_pack={model.cfg.audio_pack}")
    frames, cond, tt, aa, pos = with_reference(ref, x, audio, t)
    flow, _, _ = model(frames, cond, tt, aa, pos)
    return flow[:, 1:]


def guided_flow(model: CausalDiT, ref: torch.Tensor, x: torch.Tensor, audio: torch.Tensor, t: torch.Tensor,
                guidance: float = 1.0) -> torch.Tensor:
    """Audio classifier-free guidance: unconditional + guidance * (conditional - unconditional).

    The unconditional branch hears zero features (what audio dropout trains, and what the anchor
    frame hears), not silence: silence is a condition, the mouth shut.
    """
    flow = clip_flow(model, ref, x, audio, t).float()
    if guidance == 1.0:
        return flow
    uncond = clip_flow(model, ref, x, torch.zeros_like(audio), t).float()
    return uncond + guidance * (flow - uncond)


def clip_x0(model: CausalDiT, ref: torch.Tensor, x: torch.Tensor, audio: torch.Tensor, t: torch.Tensor,
            schedule: FlowSchedule, guidance: float = 1.0) -> torch.Tensor:
    return schedule.x0_from_flow(x, guided_flow(model, ref, x, audio, t, guidance), t)


def sample_timesteps(schedule: FlowSchedule, batch: int, frames: int, block_frames: int, block_noise: float,
                     gen: torch.Generator) -> torch.Tensor:
    """Per-frame timesteps (batch, frames) from the shifted table: one per clip, or one per block."""
    n = schedule.num_train_timesteps
    per_clip = torch.randint(0, n, (batch, 1), generator=gen)
    blocks = (frames + block_frames - 1) // block_frames
    per_block = torch.randint(0, n, (batch, blocks), generator=gen).repeat_interleave(block_frames, 1)[:, :frames]
    use_block = torch.rand(batch, 1, generator=gen) < block_noise
    idx = torch.where(use_block, per_block, per_clip.expand(batch, frames))
    return schedule.timesteps[idx]


def flow_matching_loss(model: CausalDiT, x0: torch.Tensor, ref: torch.Tensor, audio: torch.Tensor,
                       t: torch.Tensor, noise: torch.Tensor, schedule: FlowSchedule,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """(Weighted) MSE between the predicted flow and eps - x0 at x_t = (1 - sigma) x0 + sigma eps.

    weight: optional (b, 1, 1, h, w) per-cell weights of mean 1 (`engine.train.data.mouth_weight`).
    """
    x_t = schedule.add_noise(x0, noise, t)
    flow = clip_flow(model, ref, x_t, audio, t)
    err = (flow.float() - (noise - x0).float()).pow(2)
    return (err * weight).mean() if weight is not None else err.mean()


@dataclass
class Trajectory:
    """Teacher ODE states of a clip at the stream's levels (noisiest first), and its clean end."""

    levels: torch.Tensor      # (batch, L, F, C, h, w)
    x0: torch.Tensor          # (batch, F, C, h, w)
    level_t: list[float]      # timestep of each level (the sampler's warped levels)


def ode_sigmas(schedule: FlowSchedule, steps: int, must_include: list[float]) -> list[float]:
    """Descending sigma grid 1 -> 0: `steps` shifted-uniform steps plus the stream's level sigmas."""
    base = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    shifted = schedule.shift * base / (1 + (schedule.shift - 1) * base)
    grid = {round(float(s), 9) for s in shifted} | {round(float(s), 9) for s in must_include}
    return sorted(grid, reverse=True)


@torch.no_grad()
def teacher_ode(model: CausalDiT, ref: torch.Tensor, audio: torch.Tensor, noise: torch.Tensor, steps: int,
                stream: StreamConfig, schedule: FlowSchedule | None = None, guidance: float = 1.0) -> Trajectory:
    """Euler-integrate the teacher's flow from pure noise (sigma 1) to sigma 0.

    The grid holds the stream's level sigmas exactly, so the recorded states are the ODE's own
    points at t[j], not interpolations. noise: (b, F, C, h, w); audio: (b, F, D); ref: (b, C, h, w).
    """
    schedule = schedule or schedule_for(stream)
    level_t = schedule.levels(stream)
    level_sigma = [round(float(schedule.sigma(torch.tensor(t))), 9) for t in level_t]
    sigmas = ode_sigmas(schedule, steps, level_sigma)
    x = noise.float()
    states: dict[float, torch.Tensor] = {}
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        if s in level_sigma:
            states[s] = x.clone()
        t = x.new_full(x.shape[:2], s * schedule.num_train_timesteps)
        flow = guided_flow(model, ref, x, audio, t, guidance)
        x = x + (s_next - s) * flow
    levels = torch.stack([states[s] for s in level_sigma], dim=1)
    return Trajectory(levels=levels, x0=x, level_t=level_t)


def build_teacher(recipe: Recipe, seed: int) -> CausalDiT:
    """A fresh teacher, or (teacher.init set) one starting from earlier teacher weights."""
    torch.manual_seed(seed)
    model = CausalDiT(recipe.model)
    if recipe.teacher.init:
        path = resolve(recipe.teacher.init)
        if not path.is_file():
            raise ValueError(f"teacher.init: no weights at {path}")
        load_weights(model, path)
    return model


def train(recipe: Recipe, data_dir: str | Path, out: str | Path, d: Dist, resume: bool = False) -> Path:
    """Flow-matching training of the teacher; writes <out>/teacher.safetensors. Returns that path."""
    cfg: TeacherConfig = recipe.teacher
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = LatentClips(data_dir)
    data.check_model(recipe.model)
    schedule = schedule_for(recipe.stream)
    bf = recipe.stream.block_frames
    model = build_teacher(recipe, cfg.seed).to(d.device).train()
    opt = adamw(model.parameters(), cfg.lr, cfg.weight_decay)
    start = restore_state(out, resume, model=model, optimizer=opt)
    d.broadcast_module(model)
    write_recipe(out, recipe, d)
    lengths = list(range(max(bf, cfg.min_frames // bf * bf), cfg.frames + 1, bf)) or [cfg.frames]

    def loss_fn(step: int, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        frames = lengths[int(torch.randint(0, len(lengths), (1,), generator=generator(cfg.seed, step, 0, 1)))]
        x0, audio, ref, clips = data.draw(cfg.batch, frames, gen)
        t = sample_timesteps(schedule, cfg.batch, frames, bf, cfg.block_noise, gen)
        noise = torch.randn(x0.shape, generator=gen)
        drop = torch.rand(cfg.batch, generator=gen) < cfg.audio_dropout
        audio = torch.where(drop[:, None, None], torch.zeros_like(audio), audio)
        weight = mouth_weight(data.mouth[clips], cfg.mouth_weight).to(d.device) if cfg.mouth_weight else None
        with torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = flow_matching_loss(model, x0.to(d.device), ref.to(d.device), audio.to(d.device),
                                      t.to(d.device), noise.to(d.device), schedule, weight)
        return loss, {"frames": frames}

    train_steps(model, opt, cfg, out, start, d, "teacher", loss_fn)
    return save_final(model, out / WEIGHTS, d, "teacher model")


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    run_stage(args, "teacher", lambda recipe, d: train(recipe, args.data, args.out, d, resume=args.resume))


if __name__ == "__main__":
    main()

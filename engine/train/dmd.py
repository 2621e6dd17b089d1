"""Distribution matching distillation on the student's own streams (DMD2 recipe, self-forcing style).

Why on its own rollouts: after ODE backfill the student has only seen teacher states; at run time
it sees its own outputs in the cache. Here it streams with the real sampler (dual anchors, its
own temporal anchor, fresh and re-noised noise), and the clips it emits are pushed toward the
teacher's distribution: noise them to a random t, ask the teacher (real score) and a fake-score
network trained on the student's outputs (fake score) for x0, and move the student along
(fake_x0 - real_x0), normalised per sample. The fake score is updated `fake_per_student` times
per student update (two time-scale rule); gradients reach the student only through the final
x0 of its newest emitted blocks (the rest of the rollout runs without a graph).

    python -m engine.train.dmd --config recipe.yaml --data runs/toon/data --teacher .../teacher.safetensors \
        --student runs/toon/ode/student.safetensors [--pairs runs/toon/ode/trajectories] --out runs/toon/dmd
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Callable

import torch

from engine.checkpoints import load_weights
from engine.config import StreamConfig
from engine.model import CausalDiT
from engine.sampler import StreamingSampler
from engine.schedule import FlowSchedule, schedule_for
from engine.train.data import LatentClips
from engine.train.dist import Dist, JsonlLog, generator
from engine.train.loop import (LOSSES, adamw, clip_and_step, restore_state, run_stage, save_final, save_state, set_lr,
                               stage_parser, write_recipe)
from engine.train.ode_backfill import OdePairs, check_levels, ode_loss
from engine.train.recipe import DmdConfig, Recipe
from engine.train.teacher import clip_x0, flow_matching_loss, sample_timesteps

log = logging.getLogger(__name__)

WEIGHTS = "student.safetensors"
X0Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rollout(student: CausalDiT, stream: StreamConfig, ref: torch.Tensor, audio: torch.Tensor,
            gen: torch.Generator, grad_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stream audio (b, n*B*pack, D) through the student; returns (emitted x0 (b, E*B, C, h, w), their audio).

    E = n - L + 1 blocks are emitted (no drain: a live stream has none); the newest `grad_blocks`
    of them carry gradients.
    """
    bf, L = stream.block_frames, stream.window_blocks
    rows = bf * student.cfg.audio_pack
    n = audio.shape[1] // rows
    if n < L:
        raise ValueError(f"a rollout needs at least L={L} blocks of audio to emit anything; got {n}")
    emitted_count = n - L + 1
    sampler = StreamingSampler(student, stream, generator=gen)
    sampler.start(ref)
    out = []
    for i in range(n):
        emits = i - (L - 1)
        grad = torch.is_grad_enabled() and emits >= emitted_count - grad_blocks
        with torch.set_grad_enabled(grad):
            block = sampler.advance(audio[:, i * rows:(i + 1) * rows])
        for pending in sampler.pending:       # a gradient reaches the weights only through this window's call
            pending.x = pending.x.detach()
        if block is not None:
            out.append(block if grad else block.detach())
    return torch.cat(out, dim=1), audio[:, :emitted_count * rows]


def dmd_loss(x0: torch.Tensor, real_x0: X0Fn, fake_x0: X0Fn, schedule: FlowSchedule, t: torch.Tensor,
             noise: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """DMD2 generator loss: an MSE whose gradient w.r.t. x0 is (fake_x0 - real_x0) / mean|x0 - real_x0|.

    x0 (b, F, C, h, w) carries the student's graph; t (b, F) timesteps; noise like x0. Descending this
    loss moves x0 toward where the real score points and away from the fake score.
    """
    with torch.no_grad():
        x_t = schedule.add_noise(x0.detach(), noise, t)
        real = real_x0(x_t, t).float()
        fake = fake_x0(x_t, t).float()
        dims = tuple(range(1, x0.ndim))
        weight = (x0.detach().float() - real).abs().mean(dim=dims, keepdim=True).clamp_min(1e-6)
        grad = torch.nan_to_num((fake - real) / weight)
        target = (x0.detach().float() - grad)
    loss = 0.5 * (x0.float() - target).pow(2).mean()
    return loss, {"gap": float((fake - real).abs().mean()), "weight": float(weight.mean())}


def dmd_timesteps(schedule: FlowSchedule, batch: int, frames: int, t_min: float, t_max: float,
                  gen: torch.Generator) -> torch.Tensor:
    """One table timestep per sample, within [t_min, t_max], repeated over its frames."""
    ok = ((schedule.timesteps >= t_min) & (schedule.timesteps <= t_max)).nonzero().flatten()
    if ok.numel() == 0:
        raise ValueError(f"no schedule timestep lies in [{t_min}, {t_max}]")
    pick = ok[torch.randint(0, ok.numel(), (batch,), generator=gen)]
    return schedule.timesteps[pick][:, None].expand(batch, frames).contiguous()


def train(recipe: Recipe, data_dir: str | Path, teacher_path: str | Path, student_path: str | Path,
          out: str | Path, d: Dist, resume: bool = False, pairs_dir: str | Path | None = None) -> Path:
    """DMD training of the student; writes <out>/student.safetensors."""
    cfg: DmdConfig = recipe.dmd
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = LatentClips(data_dir)
    data.check_model(recipe.model)
    stream, schedule = recipe.stream, schedule_for(recipe.stream)
    bf, L = stream.block_frames, stream.window_blocks
    pairs = None
    if cfg.ode_weight > 0:
        if pairs_dir is None:
            raise ValueError("dmd.ode_weight > 0 needs the ODE trajectories (--pairs <ode out>/trajectories)")
        pairs = OdePairs(pairs_dir)
        check_levels(pairs, recipe)
    teacher = load_weights(CausalDiT(recipe.model), teacher_path).to(d.device).eval().requires_grad_(False)
    fake = copy.deepcopy(teacher).train().requires_grad_(True)
    student = load_weights(CausalDiT(recipe.model), student_path).to(d.device).train()
    opt = adamw(student.parameters(), cfg.lr)
    fake_opt = adamw(fake.parameters(), cfg.fake_lr)
    start = restore_state(out, resume, model=student, fake=fake, optimizer=opt, fake_optimizer=fake_opt)
    write_recipe(out, recipe, d)
    losses = JsonlLog(out / LOSSES, d)
    k = max(1, cfg.fake_per_student)
    iterations = cfg.steps * k
    bar = d.progress(iterations, start, "DMD")
    frames_in = (cfg.rollout_blocks * bf)
    for it in range(start, iterations):
        gen = generator(cfg.seed, it, d.rank)
        student_turn = (it + 1) % k == 0
        _, audio, ref = data.batch(cfg.batch, frames_in, gen)
        audio, ref = audio.to(d.device), ref.to(d.device)
        set_lr(opt, cfg.lr, it // k, 1)
        set_lr(fake_opt, cfg.fake_lr, it, 1)
        with torch.set_grad_enabled(student_turn):
            x0, x_audio = rollout(student, stream, ref, audio, gen, cfg.grad_blocks)
        record: dict[str, float] = {}
        if student_turn:
            t = dmd_timesteps(schedule, x0.shape[0], x0.shape[1], cfg.t_min, cfg.t_max, gen).to(d.device)
            noise = torch.randn(x0.shape, generator=gen).to(d.device)
            loss, info = dmd_loss(x0, lambda x, tt: clip_x0(teacher, ref, x, x_audio, tt, schedule, cfg.guidance),
                                  lambda x, tt: clip_x0(fake, ref, x, x_audio, tt, schedule), schedule, t, noise)
            if pairs is not None:
                reg = ode_loss(student, recipe, schedule, pairs, cfg.batch, gen, d.device)
                loss = loss + cfg.ode_weight * reg
                record["ode"] = d.mean(reg.detach())
            loss.backward()
            fake.zero_grad(set_to_none=True)
            record["grad_norm"] = clip_and_step(opt, student.parameters(), cfg.grad_clip, d)
            record["dmd"] = d.mean(loss.detach())
            record["gap"] = d.mean(info["gap"])
        sample = x0.detach()
        t_fake = sample_timesteps(schedule, sample.shape[0], sample.shape[1], bf, recipe.teacher.block_noise, gen)
        noise = torch.randn(sample.shape, generator=gen).to(d.device)
        fake_loss = flow_matching_loss(fake, sample, ref, x_audio, t_fake.to(d.device), noise, schedule)
        fake_loss.backward()
        clip_and_step(fake_opt, fake.parameters(), cfg.grad_clip, d)
        record["fake"] = d.mean(fake_loss.detach())
        done = it + 1
        if student_turn and ((done // k) % cfg.log_every == 0 or it + 1 == k):
            losses.write(done, student_step=done // k, **record)
        bar.update(1)
        bar.set_postfix(fake=f"{record['fake']:.4f}", **({"dmd": f"{record['dmd']:.4f}"} if "dmd" in record else {}))
        if done % (cfg.ckpt_every * k) == 0 or done == iterations:
            save_state(out, done, d, model=student, fake=fake, optimizer=opt, fake_optimizer=fake_opt)
    bar.close()
    d.assert_in_sync(fake, "dmd fake score")
    return save_final(student, out / WEIGHTS, d, "dmd student")


def main(argv: list[str] | None = None) -> None:
    p = stage_parser(__doc__)
    p.add_argument("--teacher", required=True, help="teacher weights: the real score and the fake score's start")
    p.add_argument("--student", required=True, help="student weights after ODE backfill")
    p.add_argument("--pairs", help="ODE trajectories folder (needed when dmd.ode_weight > 0)")
    args = p.parse_args(argv)
    run_stage(args, "dmd", lambda recipe, d: train(recipe, args.data, args.teacher, args.student, args.out, d,
                                                   resume=args.resume, pairs_dir=args.pairs))


if __name__ == "__main__":
    main()

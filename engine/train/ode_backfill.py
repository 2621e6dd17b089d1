"""ODE backfill: regress the causal student on teacher ODE solutions laid out as sliding windows.

Why: a one-step student must map a window of blocks at heterogeneous noise levels straight to
clean latents. The teacher's ODE gives, for one noise draw, the state of every frame at every
stream level t[j] and the clean end it leads to; a window example puts block j of the window at
its level's state and asks the student for the clean end of every block (CausVid/Self-Forcing
"ODE initialisation", in AvatarForcing's window layout).

Every window is made of the streaming sampler's own calls (`engine.sampler.prefill_anchor`,
`update_anchor`, `window_step`; the test compares the recorded calls): the reference frame is
prefilled at t=0 with silent audio (style anchor), each earlier block's clean latents go through
the cache-update call at t=context_noise in order (temporal anchor), then the window's one
denoising call. Only the inputs differ: teacher ODE states instead of the sampler's own noise.
Gradients flow through those anchor calls too (`grad_through_anchors`), so the student learns
to write useful keys into its own cache.

    python -m engine.train.ode_backfill --config recipe.yaml --data runs/toon/data \
        --teacher runs/toon/teacher/teacher.safetensors --out runs/toon/ode
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engine.cache import StreamCache
from engine.checkpoints import load_weights
from engine.config import StreamConfig
from engine.files import atomic_write
from engine.model import CausalDiT
from engine.sampler import CallRecord, Conditioning, plan_windows, prefill_anchor, update_anchor, window_step
from engine.schedule import FlowSchedule, schedule_for
from engine.train.data import LatentClips, mouth_weight
from engine.train.dist import Dist, generator
from engine.train.loop import adamw, restore_state, run_stage, save_final, stage_parser, train_steps, write_recipe
from engine.train.recipe import OdeConfig, Recipe
from engine.train.teacher import teacher_ode

log = logging.getLogger(__name__)

WEIGHTS = "student.safetensors"
TRAJECTORIES = "trajectories"


# -- the window layout ---------------------------------------------------------------------------
@dataclass
class WindowSpec:
    """Window `index` of a stream of n blocks: its blocks (oldest first) and each block's level index."""

    index: int
    blocks: list[int]
    levels: list[int]

    @property
    def start_block(self) -> int:
        return self.blocks[0]


def window_specs(n_blocks: int, window: int, tail: bool = True) -> list[WindowSpec]:
    """Every window the sampler runs for n blocks (warm-up, full, and with `tail` the drain)."""
    specs = []
    for wi, (sb, eb) in enumerate(plan_windows(n_blocks, window)):
        if not tail and wi >= n_blocks:
            break
        blocks = list(range(sb, eb))
        specs.append(WindowSpec(wi, blocks, [wi - b for b in blocks]))
    return specs


class GradCache(StreamCache):
    """The engine's cache, positions and all, but keeping the autograd graph of the anchors."""

    keep_graph = True


def student_window(model: CausalDiT, stream: StreamConfig, schedule: FlowSchedule, spec: WindowSpec,
                   ref: torch.Tensor, clean: torch.Tensor, audio: torch.Tensor, noisy: torch.Tensor,
                   grad_anchors: bool = True, calls: list[CallRecord] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The student's x0 for window `spec`, through the streaming sampler's own calls (`engine.sampler`).

    ref (b, C, h, w); clean / audio: the whole stream's clean latents (b, n*B, C, h, w) and audio rows
    (b, n*B, D) (clean blocks before the window feed the cache-update calls); noisy: the window's
    input (b, len(spec.blocks)*B, C, h, w). Returns (x0, t) of the window's frames.
    """
    if not stream.kv_cache:
        raise ValueError("training needs stream.kv_cache=True (the no-cache mode is only a cost baseline)")
    if stream.passes != 1:
        raise ValueError(f"ODE backfill trains one pass per level; stream.passes={stream.passes}")
    cfg, bf = model.cfg, stream.block_frames
    rows = bf * cfg.audio_pack
    levels = schedule.levels(stream)
    observe = (lambda kind, info: calls.append(CallRecord.of(kind, info))) if calls is not None else None
    cond = Conditioning(ref, (GradCache if grad_anchors else StreamCache)(cfg.num_layers, stream.temporal_frames))
    heard = audio[:, :cfg.audio_pack]      # what the anchor frame hears: silence unless the ablation says so
    prefill_anchor(model, cond, torch.zeros_like(heard) if stream.anchor_audio_zero else heard, observe)
    for b in range(spec.start_block):
        update_anchor(model, stream, cond, clean[:, b * bf:(b + 1) * bf], audio[:, b * rows:(b + 1) * rows],
                      1 + b * bf, observe=observe)
    t = torch.cat([noisy.new_full((noisy.shape[0], bf), levels[lv]) for lv in spec.levels], dim=1)
    window_audio = audio[:, spec.start_block * rows:(spec.blocks[-1] + 1) * rows]
    return window_step(model, stream, schedule, cond, noisy, t, window_audio, 1 + spec.start_block * bf, observe), t


def window_input(levels: torch.Tensor, spec: WindowSpec, block_frames: int) -> torch.Tensor:
    """Block j of the window at its level's ODE state: levels (b, L, F, C, h, w) -> (b, n*B, C, h, w)."""
    parts = [levels[:, lv, b * block_frames:(b + 1) * block_frames] for b, lv in zip(spec.blocks, spec.levels)]
    return torch.cat(parts, dim=1)


def window_target(x0: torch.Tensor, spec: WindowSpec, block_frames: int) -> torch.Tensor:
    return x0[:, spec.start_block * block_frames:(spec.blocks[-1] + 1) * block_frames]


# -- teacher trajectories on disk -----------------------------------------------------------------
def ode_frames(recipe: Recipe) -> int:
    """Frames per trajectory: the teacher's clip length, rounded down to whole blocks (at least L blocks)."""
    bf, L = recipe.stream.block_frames, recipe.stream.window_blocks
    return max(L * bf, recipe.teacher.frames // bf * bf)


def generate_trajectories(recipe: Recipe, teacher: CausalDiT, data: LatentClips, folder: Path, d: Dist) -> Path:
    """Teacher ODE solutions in chunks of `gen_batch`; chunk c is made by rank c % world from seed c
    alone (so the set does not depend on the number of ranks) and skipped when it already exists."""
    cfg: OdeConfig = recipe.ode
    folder.mkdir(parents=True, exist_ok=True)
    frames = ode_frames(recipe)
    chunks = (cfg.trajectories + cfg.gen_batch - 1) // cfg.gen_batch
    bar = d.progress(chunks, 0, "teacher ODE")
    for c in range(chunks):
        path = folder / f"traj-{c:05d}.safetensors"
        if c % d.world == d.rank and not path.exists():
            n = min(cfg.gen_batch, cfg.trajectories - c * cfg.gen_batch)
            gen = generator(cfg.seed, c, 0, salt=2)
            _, audio, ref, mouth = data.batch_with_mouth(n, frames, gen)
            noise = torch.randn(n, frames, *data.latent_shape, generator=gen)
            traj = teacher_ode(teacher, ref.to(d.device), audio.to(d.device), noise.to(d.device), cfg.ode_steps,
                               recipe.stream, guidance=cfg.guidance)
            tensors = {"levels": traj.levels.cpu().contiguous(), "x0": traj.x0.cpu().contiguous(),
                       "audio": audio.contiguous(), "reference": ref.contiguous(), "mouth": mouth.contiguous(),
                       "level_t": torch.tensor(traj.level_t, dtype=torch.float64)}
            atomic_write(path, lambda tmp: save_file(tensors, tmp))
        bar.update(1)
    bar.close()
    d.barrier()
    return folder


class OdePairs:
    """All stored trajectories: levels (N, L, F, C, h, w), x0 (N, F, ...), audio (N, F, D), reference (N, C, h, w),
    mouth maps (N, h, w)."""

    def __init__(self, folder: str | Path):
        files = sorted(Path(folder).glob("traj-*.safetensors"))
        if not files:
            raise ValueError(f"no teacher trajectories in {folder}")
        parts = [load_file(str(f)) for f in files]
        self.levels = torch.cat([p["levels"] for p in parts])
        self.x0 = torch.cat([p["x0"] for p in parts])
        self.audio = torch.cat([p["audio"] for p in parts])
        self.reference = torch.cat([p["reference"] for p in parts])
        if any("mouth" not in p for p in parts):
            raise ValueError(f"trajectories in {folder} predate mouth maps; delete the folder to regenerate them")
        self.mouth = torch.cat([p["mouth"] for p in parts])
        self.level_t = parts[0]["level_t"].tolist()

    def __len__(self) -> int:
        return self.x0.shape[0]

    def batch(self, size: int, gen: torch.Generator):
        idx = torch.randint(0, len(self), (size,), generator=gen)
        return self.levels[idx], self.x0[idx], self.audio[idx], self.reference[idx], self.mouth[idx]


def ode_loss(model: CausalDiT, recipe: Recipe, schedule: FlowSchedule, pairs: OdePairs, batch: int,
             gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """One batch of windows (one geometry per batch): MSE of the student's x0 to the teacher's clean end,
    weighted toward the mouth like the teacher's loss (`ode.mouth_weight`)."""
    bf, L = recipe.stream.block_frames, recipe.stream.window_blocks
    levels, x0, audio, ref, mouth = (t.to(device) for t in pairs.batch(batch, gen))
    specs = window_specs(x0.shape[1] // bf, L, tail=recipe.ode.tail_windows)
    spec = specs[int(torch.randint(0, len(specs), (1,), generator=gen))]
    pred, _ = student_window(model, recipe.stream, schedule, spec, ref, x0, audio, window_input(levels, spec, bf),
                             grad_anchors=recipe.ode.grad_through_anchors)
    err = (pred.float() - window_target(x0, spec, bf).float()).pow(2)
    if recipe.ode.mouth_weight:
        err = err * mouth_weight(mouth, recipe.ode.mouth_weight)
    return err.mean()


def check_levels(pairs: OdePairs, recipe: Recipe) -> None:
    want = schedule_for(recipe.stream).levels(recipe.stream)
    if len(want) != len(pairs.level_t) or any(abs(a - b) > 1e-3 for a, b in zip(want, pairs.level_t)):
        raise ValueError(f"trajectories were made for levels {pairs.level_t}, the recipe's stream has {want}")


def train(recipe: Recipe, data_dir: str | Path, teacher_path: str | Path, out: str | Path, d: Dist,
          resume: bool = False) -> Path:
    """Generate (or reuse) the teacher trajectories, then regress the student; writes <out>/student.safetensors."""
    cfg: OdeConfig = recipe.ode
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = LatentClips(data_dir)
    data.check_model(recipe.model)
    teacher = load_weights(CausalDiT(recipe.model), teacher_path).to(d.device).eval().requires_grad_(False)
    generate_trajectories(recipe, teacher, data, out / TRAJECTORIES, d)
    pairs = OdePairs(out / TRAJECTORIES)
    check_levels(pairs, recipe)
    schedule = schedule_for(recipe.stream)
    student = load_weights(CausalDiT(recipe.model), teacher_path).to(d.device).train()
    del teacher
    opt = adamw(student.parameters(), cfg.lr)
    start = restore_state(out, resume, model=student, optimizer=opt)
    write_recipe(out, recipe, d)
    train_steps(student, opt, cfg, out, start, d, "ODE backfill",
                lambda step, gen: (ode_loss(student, recipe, schedule, pairs, cfg.batch, gen, d.device), {}))
    return save_final(student, out / WEIGHTS, d, "ode_backfill student")


def main(argv: list[str] | None = None) -> None:
    p = stage_parser(__doc__)
    p.add_argument("--teacher", required=True, help="teacher weights (teacher.safetensors)")
    args = p.parse_args(argv)
    run_stage(args, "ode", lambda recipe, d: train(recipe, args.data, args.teacher, args.out, d, resume=args.resume))


if __name__ == "__main__":
    main()

"""Train the rig decoder's control reader (engine/codecs/rigdecoder.py): latents in, face controls out.

    python -m engine.train.train_rig --out runs/rig --export engine/models/toon/rig

Data: training identities (optionally a share on green screens) rendered at the autoencoder's size
under random controls (speech mouths, lids, head poses like the training clips'), encoded by the
shipped autoencoder. The set is rendered and encoded once (deterministic by seed); every step
perturbs its latents afresh the way the generator errs (`train_refdecoder.perturb`), so the reader
learns to read the pose through noise.
Lids are random in the data but not read (the stream's idle clock shuts them), so the reader learns
to ignore them. Loss: L1 per control, the jaw counted twice (it is what lip sync is made of).

With `--rollouts N` the card's student also streams N training clips (unseen seeds) and its own
latents join the data, labelled with the clip's mouth (`engine.train.rollout_latents`): half of
every batch by default, the mouth's controls only. That is what the reader reads at run time; the
rendered frames keep it reading any face and pose. `eval.json` then also holds the jaw's
correlation on held-out clips streamed by the student (`student_heldout`).
Tried on 2026-12-02 (240 clips, share 0.75; docs/eval_toon_reader_student_latents.md): on the
student's held-out latents the jaw followed the clips at r 0.783 (shipped reader 0.759), width and
rounding at 0.42 and 0.35 (0.13 and -0.02), but the evaluation's lip sync through the mouth probe
fell from 0.784 to 0.728 and speaking openness from 0.28 to 0.16: the reader reads smaller openings,
likely closed further by `calm_mouth`'s dead zone. Not shipped (rollouts default to 0).

A few minutes on 2 cores; `eval.json` holds held-out identities' error per control (and the same
identities on green screens).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engine.codecs.autoencoder import ToonAutoencoder, load_default
from engine.codecs.rigdecoder import READ_CONTROLS, ControlReader, ReaderConfig
from engine.files import atomic_write_text
from engine.toon.creator import training_identity
from engine.toon.render import CONTROL_NAMES, FaceControls, render_frame, render_portrait
from engine.train.train_autoencoder import HELDOUT_SEED_BASE, TRAIN_IDENTITIES, cosine_lr
from engine.train.train_refdecoder import perturb, reference_latent

log = logging.getLogger(__name__)


@dataclass
class RigTrainConfig:
    examples: int = 8000           # rendered and encoded once
    identities: int = 600          # training identities they are drawn on
    steps: int = 4000
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 100
    threads: int = 2
    noise: float = 0.3             # latent perturbation, as in train_refdecoder.TrainConfig
    blotch: float = 0.25
    corrupt: float = 0.8
    jaw_weight: float = 2.0
    heldout: int = 1024            # held-out frames (on heldout_identities unseen identities)
    heldout_identities: int = 128
    green_screen: float = 0.0      # share of identities on a key colour (creator avatars); the shipped reader: 0
    seed: int = 0
    card: str = "engine/models/toon"   # whose student streams the rollouts
    rollouts: int = 0              # training clips streamed by the student (0: rendered frames only)
    rollout_seconds: float = 4.0
    rollout_share: float = 0.5     # of every batch, when there are rollouts
    rollout_first_seed: int = 50_000   # clip seeds the student never trained on (its clips: 0..clips-1)
    heldout_rollouts: int = 12     # held-out clips (seeds 100500..) streamed for `student_heldout`


def random_rig_controls(rng: np.random.Generator) -> FaceControls:
    """Speech mouths, random lids (to be ignored) and head poses about as wide as the clips' sway."""
    open_ = 0.0 if rng.random() < 0.3 else float(rng.uniform(0, 1))
    head = np.zeros(3) if rng.random() < 0.4 else np.clip(rng.normal(0, [0.25, 0.15, 0.15]), -0.8, 0.8)
    return FaceControls(mouth_open=open_, mouth_width=float(rng.uniform(0, 1)),
                        mouth_round=0.0 if rng.random() < 0.5 else float(rng.uniform(0, 1)),
                        blink=0.0 if rng.random() < 0.7 else float(rng.uniform(0, 1)),
                        yaw=float(head[0]), roll=float(head[1]), nod=float(head[2]))


@torch.no_grad()
def make_set(ae: ToonAutoencoder, n: int, seeds: list[int], rng: np.random.Generator,
             chunk: int = 64, green_screen: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(latents, reference latents, controls in READ_CONTROLS order) for n frames of the given identities."""
    cols = [CONTROL_NAMES.index(c) for c in READ_CONTROLS]
    idents = {s: training_identity(s, green_screen) for s in seeds}
    # as the stream makes it: the avatar's picture, drawn at the app's 512 px, through the encoder
    refs = {s: reference_latent(ae, render_portrait(ident, 512)) for s, ident in idents.items()}
    zs, zr, ys = [], [], []
    for a in range(0, n, chunk):
        picked = [seeds[int(rng.integers(len(seeds)))] for _ in range(min(chunk, n - a))]
        controls = [random_rig_controls(rng) for _ in picked]
        frames = np.stack([render_frame(idents[s], c, ae.cfg.image_size) for s, c in zip(picked, controls)])
        zs.append(ae.encode(frames))
        zr.append(torch.cat([refs[s] for s in picked]))
        ys.append(torch.from_numpy(np.stack([c.as_array()[cols] for c in controls])))
    return torch.cat(zs), torch.cat(zr), torch.cat(ys)


MOUTH = torch.tensor([c in ("mouth_open", "mouth_width", "mouth_round") for c in READ_CONTROLS])
HELDOUT_CLIPS = 100_500     # clip seeds for the student's held-out rollouts (the evaluation uses 100000..100499)


@torch.no_grad()
def evaluate(model: ControlReader, data: tuple[torch.Tensor, ...]) -> dict:
    """Mean absolute error per control and the jaw's correlation, on clean latents."""
    model.eval()
    z, zr, y = data
    pred = model(z, zr)
    model.train()
    err = (pred - y).abs().mean(0)
    jaw = torch.corrcoef(torch.stack([pred[:, 0], y[:, 0]]))[0, 1]
    return {"mae": {n: float(e) for n, e in zip(READ_CONTROLS, err)}, "jaw_r": float(jaw), "n": int(len(y))}


def train(out: Path, tc: RigTrainConfig, cfg: ReaderConfig) -> ControlReader:
    torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    out.mkdir(parents=True, exist_ok=True)
    ae = load_default()
    rng = np.random.default_rng(tc.seed)
    t0 = time.monotonic()
    seeds = [int(s) for s in rng.integers(TRAIN_IDENTITIES, size=tc.identities)]
    data = make_set(ae, tc.examples, seeds, rng, green_screen=tc.green_screen)
    unseen = [HELDOUT_SEED_BASE + i for i in range(tc.heldout_identities)]
    heldout = make_set(ae, tc.heldout, unseen, np.random.default_rng(tc.seed + 1))
    keyed = make_set(ae, tc.heldout // 2, unseen, np.random.default_rng(tc.seed + 2), green_screen=1.0)
    rollouts = student_heldout = None
    if tc.rollouts:
        from engine.train.rollout_latents import student_latents
        first = tc.rollout_first_seed
        rollouts = student_latents(tc.card, list(range(first, first + tc.rollouts)), tc.rollout_seconds, tc.threads)
        student_heldout = student_latents(tc.card, list(range(HELDOUT_CLIPS, HELDOUT_CLIPS + tc.heldout_rollouts)),
                                          8.0, tc.threads)
    log.info("data: %d training frames, %d student frames, %d held-out (%.1f min)", len(data[0]),
             0 if rollouts is None else len(rollouts[0]), len(heldout[0]), (time.monotonic() - t0) / 60)
    model = ControlReader(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(tc.seed)
    weights = torch.ones(len(READ_CONTROLS))
    weights[0] = tc.jaw_weight
    history = []
    for step in range(tc.steps):
        lr = cosine_lr(step, tc)
        for g in opt.param_groups:
            g["lr"] = lr
        n_student = int(round(tc.batch * tc.rollout_share)) if rollouts is not None else 0
        idx = torch.randint(len(data[0]), (tc.batch - n_student,), generator=gen)
        z = perturb(data[0][idx], tc, gen)
        loss = ((model(z, data[1][idx]) - data[2][idx]).abs() * weights).mean()
        if n_student:
            j = torch.randint(len(rollouts[0]), (n_student,), generator=gen)
            err = (model(rollouts[0][j], rollouts[1][j]) - rollouts[2][j]).abs() * (weights * MOUTH)
            loss = loss * (1 - tc.rollout_share) + err.mean() * tc.rollout_share
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": step, "loss": loss.item()})
        if (step + 1) % 200 == 0:
            log.info("step %d loss %.4f (%.1f min)", step + 1, loss.item(), (time.monotonic() - t0) / 60)
    metrics = {**evaluate(model, heldout), "green_screen": evaluate(model, keyed),
               "student_heldout": evaluate(model, student_heldout) if student_heldout is not None else None,
               "train_minutes": (time.monotonic() - t0) / 60, "config": asdict(tc)}
    atomic_write_text(out / "eval.json", json.dumps(metrics, indent=1))
    atomic_write_text(out / "losses.json", json.dumps(history))
    model.save(out / "rig.safetensors")
    log.info("done: %s", metrics)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="run folder (eval.json, losses.json, weights)")
    ap.add_argument("--steps", type=int, default=RigTrainConfig.steps)
    ap.add_argument("--examples", type=int, default=RigTrainConfig.examples)
    ap.add_argument("--threads", type=int, default=RigTrainConfig.threads)
    ap.add_argument("--green-screen", type=float, default=RigTrainConfig.green_screen,
                    help="share of identities on a key colour (0.15 matches the model's clips; not yet shipped)")
    ap.add_argument("--rollouts", type=int, default=RigTrainConfig.rollouts,
                    help="training clips the card's student streams; its latents join the data (shipped reader: 0; tried: 240, docs/eval_toon_reader_student_latents.md)")
    ap.add_argument("--rollout-share", type=float, default=RigTrainConfig.rollout_share,
                    help="share of every batch from those rollouts (tried: 0.75)")
    ap.add_argument("--card", default=RigTrainConfig.card, help="the card whose student streams the rollouts")
    ap.add_argument("--export", type=Path, default=None, help="also write the weights + yaml here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    model = train(args.out, RigTrainConfig(steps=args.steps, examples=args.examples, threads=args.threads,
                                           green_screen=args.green_screen, rollouts=args.rollouts,
                                           rollout_share=args.rollout_share, card=args.card),
                  ReaderConfig())
    if args.export is not None:
        model.save(args.export)


if __name__ == "__main__":
    main()

"""Train the rig decoder's control reader (engine/codecs/rigdecoder.py): latents in, face controls out.

    python -m engine.train.train_rig --out runs/rig --export engine/models/toon/rig

Data: training identities (optionally a share on green screens) rendered at the autoencoder's size
under random controls (speech mouths, lids, head poses like the training clips'), encoded by the
shipped autoencoder. The set is rendered and encoded once (deterministic by seed); every step
perturbs its latents afresh the way the generator errs (`train_refdecoder.perturb`), so the reader
learns to read the pose through noise.
Lids are random in the data but not read (the stream's idle clock shuts them), so the reader learns
to ignore them. Loss: L1 per control, the jaw counted twice (it is what lip sync is made of).

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
    log.info("data: %d training frames, %d held-out (%.1f min)", len(data[0]), len(heldout[0]),
             (time.monotonic() - t0) / 60)
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
        idx = torch.randint(len(data[0]), (tc.batch,), generator=gen)
        z = perturb(data[0][idx], tc, gen)
        loss = ((model(z, data[1][idx]) - data[2][idx]).abs() * weights).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": step, "loss": loss.item()})
        if (step + 1) % 200 == 0:
            log.info("step %d loss %.4f (%.1f min)", step + 1, loss.item(), (time.monotonic() - t0) / 60)
    metrics = {**evaluate(model, heldout), "green_screen": evaluate(model, keyed), "train_minutes": (time.monotonic() - t0) / 60, "config": asdict(tc)}
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
    ap.add_argument("--export", type=Path, default=None, help="also write the weights + yaml here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    model = train(args.out, RigTrainConfig(steps=args.steps, examples=args.examples, threads=args.threads,
                                                green_screen=args.green_screen),
                  ReaderConfig())
    if args.export is not None:
        model.save(args.export)


if __name__ == "__main__":
    main()

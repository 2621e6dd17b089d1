"""Train the reference-aware decoder (engine/codecs/refdecoder.py) on frames rendered on the fly.

    python -m engine.train.train_refdecoder --out runs/refdec --steps 3000 [--export engine/models/toon/refdecoder]

Each example: a training identity's neutral portrait at 512 (the reference), a frame of the same
identity under random controls (mouth, blink, a small head pose) encoded by the shipped
autoencoder at 256 (what the generator produces), and the same frame rendered at 512 (the target).
The latent is perturbed (white noise, blotchy low-frequency noise, a few heavily corrupted cells)
so the generator's own errors do not turn into smears: the decoder learns to trust the portrait
unless the latent clearly says the picture changed. Half the examples also get a blink `drive`
(the target then blinks at least that much) so the stream can add idle blinks the audio cannot
predict. The loss is L1 plus an edge term, weighted towards pixels that differ from the portrait,
the eyes (with glasses and brows) and the outlines.

Resumable: `checkpoint.pt` holds weights, optimiser and step; batch s is a pure function of (s, seed).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.codecs.autoencoder import ToonAutoencoder, load_default
from engine.codecs.decoders import fit_image
from engine.codecs.refdecoder import (BaseDecoder, RefDecoder, RefDecoderConfig, from_patches, image_to_tensor,
                                      to_patches)
from engine.files import atomic_write, atomic_write_text
from engine.tools.eval_picture import edge_energy, psnr
from engine.toon import Identity, random_identity, render_portrait
from engine.toon.regions import eye_box
from engine.toon.render import FaceControls, render_frame
from engine.train.train_autoencoder import HELDOUT_SEED_BASE, TRAIN_IDENTITIES, cosine_lr, restore

log = logging.getLogger(__name__)



@dataclass
class TrainConfig:
    steps: int = 3000
    batch: int = 6
    per_identity: int = 3              # frames per identity in a batch (they share the portrait's cost)
    workers: int = 1                   # data processes (rendering + encoding overlap the training step)
    lr: float = 2e-3
    warmup: int = 100
    threads: int = 2
    ckpt_every: int = 100
    max_minutes: float = 0.0           # 0: no wall-clock limit
    noise: float = 0.3                 # white latent noise, sigma ~ U(0, noise)
    blotch: float = 0.25               # low-frequency latent noise, sigma ~ U(0, blotch)
    corrupt: float = 0.8               # sigma of the few heavily corrupted cells
    drive_p: float = 0.5               # share of examples with a blink drive
    changed_weight: float = 6.0        # extra loss weight where the target differs from the portrait
    eye_weight: float = 3.0            # extra loss weight in the eye box
    edge_weight: float = 1.0           # weight of the gradient (outline) term
    synth_weight: float = 0.5          # L1 of the synthesis alone where the picture changed (learns before the mask opens)
    mask_weight: float = 0.2           # BCE of the mask against "changed" (target differs from the portrait)
    crop_cells: int = 10               # train on crops of this many latent cells (x32 pixels) around the face; 0: whole
    seed: int = 0


def decoder_controls(rng: np.random.Generator) -> FaceControls:
    """Mouth shapes of speech, blinks, and the small head poses the generator produces.

    Mostly no head motion: the one-step student barely moves the head, and a decoder that learns
    to expect motion redraws every outline on a hunch (soft edges) instead of copying them.
    """
    open_ = 0.0 if rng.random() < 0.3 else float(rng.uniform(0, 1))
    blink = 0.0 if rng.random() < 0.7 else (1.0 if rng.random() < 0.4 else float(rng.uniform(0, 1)))
    pose = np.zeros(3) if rng.random() < 0.7 else np.clip(rng.normal(0, 0.08, 3), -0.3, 0.3)
    return FaceControls(mouth_open=open_, mouth_width=float(rng.uniform(0, 1)),
                        mouth_round=float(rng.uniform(0, 1)) if rng.random() < 0.5 else 0.0,
                        blink=blink, yaw=float(pose[0]), roll=float(pose[1]), nod=float(pose[2]))


@functools.lru_cache(maxsize=256)
def _portrait(seed: int, size: int) -> np.ndarray:
    return render_portrait(random_identity(seed), size)


def reference_latent(ae: ToonAutoencoder, portrait: np.ndarray) -> torch.Tensor:
    """The reference latent exactly as the stream makes it: the portrait fitted to the encoder's size."""
    s = ae.cfg.image_size
    return ae.encode(fit_image(portrait, s, s))


@dataclass
class Batch:
    portraits: torch.Tensor    # (B, 3, S, S) in [-1, 1]
    z_ref: torch.Tensor        # (B, C, h, w)
    z: torch.Tensor            # (B, C, h, w), perturbed
    drive: torch.Tensor        # (B, 1)
    targets: torch.Tensor      # (B, 3, S, S) in [-1, 1]
    identities: list[Identity]
    origin: tuple[int, int] = (0, 0)   # pixel (row, col) of targets[..., 0, 0] in the whole frame
    frame_size: int = 0                # the whole frame's size (0: targets are the whole frame)


def make_batch(step: int, tc: TrainConfig, ae: ToonAutoencoder, size: int, heldout: bool = False) -> Batch:
    rng = np.random.default_rng([tc.seed, step, int(heldout)])
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    n_ids = max(1, tc.batch // tc.per_identity)
    seeds = [HELDOUT_SEED_BASE + step * n_ids + b if heldout else int(rng.integers(TRAIN_IDENTITIES))
             for b in range(n_ids)]
    seeds = [seeds[i * n_ids // tc.batch] for i in range(tc.batch)]
    idents = [random_identity(s) for s in seeds]
    small, targets, drive = [], [], []
    for ident in idents:
        c = decoder_controls(rng)
        d = float(rng.uniform(0, 1)) if rng.random() < tc.drive_p else 0.0
        if d and rng.random() < 0.5:
            d = 1.0
        small.append(render_frame(ident, c, ae.cfg.image_size))
        shown = FaceControls(**{**asdict(c), "blink": max(c.blink, d)})
        targets.append(render_frame(ident, shown, size))
        drive.append(d)
    with torch.no_grad():
        z = ae.encode(np.stack(small))
        refs = {s: (_portrait(s, size), reference_latent(ae, _portrait(s, size))) for s in dict.fromkeys(seeds)}
    if not heldout:
        z = perturb(z, tc, gen)
    return Batch(image_to_tensor(np.stack([refs[s][0] for s in seeds])), torch.cat([refs[s][1] for s in seeds]), z,
                 torch.tensor(drive)[:, None], image_to_tensor(np.stack(targets)), idents)


class Batches(torch.utils.data.Dataset):
    """Step s -> its batch, so a DataLoader worker can render while the main process trains."""

    def __init__(self, tc: TrainConfig, size: int, start: int):
        self.tc, self.size, self.start = tc, size, start
        self.ae: ToonAutoencoder | None = None

    def __len__(self) -> int:
        return self.tc.steps - self.start

    def __getitem__(self, i: int) -> Batch:
        if self.ae is None:
            torch.set_num_threads(1)
            self.ae = load_default()
        return make_batch(self.start + i, self.tc, self.ae, self.size)


def perturb(z: torch.Tensor, tc: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """The generator's kinds of error: fine noise, blotches, a few cells far off."""
    b, c, h, w = z.shape
    u = lambda: torch.rand(b, 1, 1, 1, generator=gen)  # noqa: E731
    z = z + u() * tc.noise * torch.randn(z.shape, generator=gen)
    coarse = torch.randn(b, c, h // 4, w // 4, generator=gen)
    z = z + u() * tc.blotch * F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    cells = (torch.rand(b, 1, h, w, generator=gen) < 0.03 * u()).float()
    return z + cells * tc.corrupt * torch.randn(z.shape, generator=gen)


def loss_weights(batch: Batch, tc: TrainConfig) -> torch.Tensor:
    """(B, 1, S, S): 1 + changed pixels (dilated) + the eye box + the target's outlines."""
    t, p = batch.targets, batch.portraits
    size = batch.frame_size or t.shape[-1]
    oy, ox = batch.origin
    changed = ((t - p).abs().amax(1, keepdim=True) > 0.08).float()
    changed = F.max_pool2d(changed, 9, 1, 4)
    w = 1.0 + tc.changed_weight * changed
    for i, ident in enumerate(batch.identities):
        y0, y1, x0, x1 = eye_box(ident, size)
        w[i, :, max(0, y0 - oy):max(0, y1 - oy), max(0, x0 - ox):max(0, x1 - ox)] += tc.eye_weight
    gx = (t[..., :, 1:] - t[..., :, :-1]).abs().amax(1, keepdim=True)
    gy = (t[..., 1:, :] - t[..., :-1, :]).abs().amax(1, keepdim=True)
    edges = F.pad(gx, (0, 1, 0, 0)) + F.pad(gy, (0, 0, 0, 1))
    return w + 2.0 * edges.clamp(0, 1)


def changed_pixels(batch: Batch, dilate: int = 2) -> torch.Tensor:
    """(B, 1, S, S) 1 where the target differs visibly from the portrait (a little dilated)."""
    changed = ((batch.targets - batch.portraits).abs().amax(1, keepdim=True) > 0.04).float()
    return F.max_pool2d(changed, 2 * dilate + 1, 1, dilate)


def loss_fn(out: tuple[torch.Tensor, dict], batch: Batch, tc: TrainConfig,
            keep: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Weighted L1 of the frame, L1 of its horizontal/vertical differences (outlines), L1 of the
    synthesis where the picture changed, and BCE of the mask against "changed"; `keep` masks pixels out."""
    frame, parts = out
    t = batch.targets
    keep = keep if keep is not None else torch.ones(1, 1, *t.shape[-2:])
    w = loss_weights(batch, tc) * keep
    wm = w.mean()
    l1 = ((frame - t).abs() * w).mean() / wm
    dx = lambda x: x[..., :, 1:] - x[..., :, :-1]  # noqa: E731
    dy = lambda x: x[..., 1:, :] - x[..., :-1, :]  # noqa: E731
    edge = ((dx(frame) - dx(t)).abs() * w[..., :, 1:]).mean() / wm + \
        ((dy(frame) - dy(t)).abs() * w[..., 1:, :]).mean() / wm
    changed = changed_pixels(batch) * keep
    synth = ((parts["synth"] - t).abs() * changed).sum() / (3 * changed.sum() + 1.0)
    bce = F.binary_cross_entropy(parts["mask"].clamp(1e-5, 1 - 1e-5), changed_pixels(batch).expand_as(parts["mask"]),
                                 reduction="none")
    mask = (bce * keep).sum() / (3 * keep.sum() * t.shape[0])
    total = l1 + tc.edge_weight * edge + tc.synth_weight * synth + tc.mask_weight * mask
    return total, {"loss": total.item(), "l1": l1.item(), "edge": edge.item(), "synth": synth.item(),
                   "mask": mask.item()}


def run(model: RefDecoder, batch: Batch) -> tuple[torch.Tensor, dict]:
    """Decoder output as (B, 3, S, S) and its parts (mask, synthesis) in the same layout."""
    p = model.cfg.out_patch
    portraits = batch.portraits.contiguous(memory_format=torch.channels_last)
    ref = (to_patches(portraits, p), batch.z_ref, model.portrait(portraits, batch.z_ref))
    frame, parts = model(batch.z, ref, batch.drive, return_parts=True)
    as_image = lambda x: from_patches(x, p).permute(0, 3, 1, 2)  # noqa: E731
    return as_image(frame), {k: as_image(v) for k, v in parts.items()}


def crop(batch: Batch, cells: int, rng: np.random.Generator, scale: int) -> tuple[Batch, torch.Tensor]:
    """A window of `cells` latent cells (and its pixels) around the face, the same for the whole batch.

    Why: the decoder is convolutional, and the face (eyes, mouth, outlines) fills the middle of
    the frame; training on that window costs a third of the whole frame. Offsets are whole cells,
    so the portrait's strided features line up exactly as on the whole frame. Returns the batch and
    a (1, 1, s, s) loss mask that leaves out a 16-pixel border (its padding differs from the frame's).
    """
    h = batch.z.shape[-1]
    if not cells or cells >= h:
        return batch, torch.ones(1, 1, *batch.targets.shape[-2:])
    r0, c0 = (int(rng.integers(2, h - cells - 1)) for _ in range(2))
    zs, ps = (slice(r0, r0 + cells), slice(c0, c0 + cells)), (slice(r0 * scale, (r0 + cells) * scale),
                                                              slice(c0 * scale, (c0 + cells) * scale))
    out = Batch(batch.portraits[..., ps[0], ps[1]], batch.z_ref[..., zs[0], zs[1]], batch.z[..., zs[0], zs[1]],
                batch.drive, batch.targets[..., ps[0], ps[1]], batch.identities, (r0 * scale, c0 * scale),
                batch.targets.shape[-1])
    keep = torch.zeros(1, 1, cells * scale, cells * scale)
    keep[..., 16:-16, 16:-16] = 1.0
    return out, keep


@torch.no_grad()
def evaluate(model: RefDecoder, ae: ToonAutoencoder, tc: TrainConfig, n_batches: int = 4) -> dict:
    """Held-out identities, clean latents: PSNR of the frame, of the eye box, eye edge energy ratio."""
    model.eval()
    full, eyes, edges = [], [], []
    size = model.cfg.image_size
    for i in range(n_batches):
        b = make_batch(i, tc, ae, size, heldout=True)
        out = ((run(model, b)[0].clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
        tgt = ((b.targets + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
        for o, t, ident in zip(out, tgt, b.identities):
            y0, y1, x0, x1 = eye_box(ident, size)
            full.append(psnr(o, t))
            eyes.append(psnr(o[y0:y1, x0:x1], t[y0:y1, x0:x1]))
            edges.append(edge_energy(o[y0:y1, x0:x1]) / max(edge_energy(t[y0:y1, x0:x1]), 1e-6))
    model.train()
    return {"psnr_heldout": float(np.mean(full)), "psnr_heldout_eyes": float(np.mean(eyes)),
            "eye_edge_ratio": float(np.mean(edges)), "n_images": len(full)}


def train(out: Path, tc: TrainConfig, cfg: RefDecoderConfig) -> RefDecoder:
    torch.set_num_threads(tc.threads)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    ae = load_default()
    model = RefDecoder(cfg).to(memory_format=torch.channels_last)
    if cfg.base:
        model.attach_base(BaseDecoder(ae))
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=1e-4, betas=(0.9, 0.99))
    start, history = restore(out, model, opt)

    def checkpoint(step: int) -> None:
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step}
        atomic_write(ckpt, lambda tmp: torch.save(state, tmp))
        atomic_write_text(out / "losses.json", json.dumps(history))
        model.save(out / "refdecoder.safetensors")

    t0 = time.monotonic()
    model.train()
    step = start
    loader = torch.utils.data.DataLoader(Batches(tc, cfg.image_size, start), batch_size=None, shuffle=False,
                                         num_workers=tc.workers, prefetch_factor=2 if tc.workers else None)
    for batch in loader:
        lr = cosine_lr(step, tc)
        for g in opt.param_groups:
            g["lr"] = lr
        batch, keep = crop(batch, tc.crop_cells, np.random.default_rng([tc.seed, step, 7]), cfg.image_size // cfg.latent_size)
        loss, parts = loss_fn(run(model, batch), batch, tc, keep)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append({"step": step, "lr": lr, **parts})
        step += 1
        if step % 20 == 0:
            log.info("step %d loss %.4f l1 %.4f edge %.4f synth %.4f mask %.4f (%.1f min)", step, parts["loss"],
                     parts["l1"], parts["edge"], parts["synth"], parts["mask"], (time.monotonic() - t0) / 60)
        if step % tc.ckpt_every == 0:
            checkpoint(step)
        if tc.max_minutes and time.monotonic() - t0 > tc.max_minutes * 60:
            log.info("wall-clock limit reached at step %d", step)
            break
        if step >= tc.steps:
            break
    checkpoint(step)
    metrics = {"steps": step, **evaluate(model, ae, tc), "train_minutes": (time.monotonic() - t0) / 60,
               "config": asdict(tc)}
    atomic_write_text(out / "eval.json", json.dumps(metrics, indent=1))
    log.info("done: %s", metrics)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, losses.json, eval.json, weights)")
    ap.add_argument("--steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--batch", type=int, default=TrainConfig.batch)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--threads", type=int, default=TrainConfig.threads)
    ap.add_argument("--workers", type=int, default=TrainConfig.workers, help="data processes (0: in the training process)")
    ap.add_argument("--max-minutes", type=float, default=0.0, help="stop early (still evaluates and saves)")
    ap.add_argument("--export", type=Path, default=None, help="also write the final weights + yaml here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    tc = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, threads=args.threads, workers=args.workers,
                     max_minutes=args.max_minutes)
    model = train(args.out, tc, RefDecoderConfig())
    if args.export is not None:
        model.save(args.export)


if __name__ == "__main__":
    main()

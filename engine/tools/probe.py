"""A mouth probe: a tiny CNN that reads mouth_open / width / round off a toon frame.

Why: to score lip sync we need the mouth state of frames the model *generated*, and the only
ground truth we have is the controls the renderer was driven with. So the probe is trained on
rendered frames with random identities, head poses and controls, after a round trip through the
toon autoencoder (encode -> decode), and on crisp renderer frames at the decoders' 512 px: the
learned decoders draw blurry round trips, a cartoon avatar's rig draws the renderer's own crisp
lines, and a probe trained on one reads the other's shut mouth as open (the round-trip-only probe
read 0.15-0.20 on the rig's shut mouths, and lost 0.04 r on its ground truth). About one avatar in
seven stands on a green screen, as creator avatars can.

It looks at a fixed crop of the frame (rows 116..208, cols 56..200 of a 256x256 frame, halved):
across 2000 identities at the extreme head poses (yaw, roll, nod = +-1) the renderer's lips
stay inside rows 121..202 and cols 61..196. Frames of another size are resized to 256 first.

    python -m engine.tools.probe [--out engine/models/toon/mouth_probe.safetensors] [--train 2400]
"""
from __future__ import annotations

import argparse
import json
import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from engine.card import MODELS_DIR
from engine.files import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

OUTPUTS = ("mouth_open", "mouth_width", "mouth_round")
DEFAULT_PATH = MODELS_DIR / "toon" / "mouth_probe.safetensors"


@dataclass
class ProbeConfig:
    """Where the probe looks and how big it is; stored next to the weights as YAML."""

    frame_size: int = 256
    crop: tuple[int, int, int, int] = (116, 208, 56, 200)   # top, bottom, left, right at frame_size
    downsample: int = 2
    channels: tuple[int, ...] = (16, 32, 64)

    def __post_init__(self) -> None:
        self.crop = tuple(int(v) for v in self.crop)  # type: ignore[assignment]
        self.channels = tuple(int(c) for c in self.channels)
        top, bottom, left, right = self.crop
        if not (0 <= top < bottom <= self.frame_size and 0 <= left < right <= self.frame_size):
            raise ValueError(f"probe crop {self.crop} does not fit a {self.frame_size}px frame")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["crop"], d["channels"] = list(self.crop), list(self.channels)
        return d


def crop_frames(frames: np.ndarray, cfg: ProbeConfig) -> np.ndarray:
    """uint8 (N, H, W, 3) frames -> uint8 (N, h, w, 3) mouth crops at the probe's resolution."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"mouth probe: expected frames (N, H, W, 3), got {frames.shape}")
    s = cfg.frame_size
    if frames.shape[1:3] != (s, s):
        from PIL import Image
        frames = np.stack([np.asarray(Image.fromarray(f.astype(np.uint8)).resize((s, s), Image.BILINEAR))
                           for f in frames])
    top, bottom, left, right = cfg.crop
    c = frames[:, top:bottom, left:right].astype(np.float32)
    k = cfg.downsample
    n, h, w, _ = c.shape
    c = c[:, : h - h % k, : w - w % k].reshape(n, h // k, k, w // k, k, 3).mean((2, 4))
    return np.round(c).astype(np.uint8)


class MouthProbe(nn.Module):
    """Three strided convs, global average pool, a linear head: ~25k parameters."""

    def __init__(self, cfg: ProbeConfig | None = None):
        super().__init__()
        self.cfg = cfg or ProbeConfig()
        layers: list[nn.Module] = []
        prev = 3
        for ch in self.cfg.channels:
            layers += [nn.Conv2d(prev, ch, 3, stride=2, padding=1), nn.GroupNorm(4, ch), nn.SiLU()]
            prev = ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(prev, len(OUTPUTS))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """float crops (N, 3, h, w) in [-1, 1] -> (N, 3) predictions."""
        return self.head(self.features(crops).mean((2, 3)))

    @staticmethod
    def to_input(crops: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    @torch.no_grad()
    def read(self, frames: np.ndarray, batch: int = 256) -> np.ndarray:
        """uint8 frames (N, H, W, 3) -> float (N, 3): mouth_open, mouth_width, mouth_round."""
        crops = crop_frames(frames, self.cfg)
        out = [self(self.to_input(crops[i:i + batch])) for i in range(0, len(crops), batch)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(OUTPUTS)), np.float32)

    def read_open(self, frames: np.ndarray) -> np.ndarray:
        return self.read(frames)[:, 0]

    def save(self, path: str | Path, metrics: dict | None = None) -> None:
        """Weights (+ held-out metrics as JSON in the safetensors metadata) and the config YAML beside them."""
        path = Path(path).with_suffix(".safetensors")
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        meta = {"format": "toon-mouth-probe", "metrics": json.dumps(metrics or {})}
        atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta), mode=0o644)
        os.chmod(path, 0o644)  # safetensors re-creates the temp file as 0600
        atomic_write_text(path.with_suffix(".yaml"), yaml.safe_dump(self.cfg.to_dict(), sort_keys=False), mode=0o644)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "MouthProbe":
        path = Path(path or DEFAULT_PATH).with_suffix(".safetensors")
        meta = path.with_suffix(".yaml")
        if not path.is_file() or not meta.is_file():
            raise FileNotFoundError(f"mouth probe: expected {path} and {meta} "
                                    "(train one with `python -m engine.tools.probe`)")
        probe = cls(ProbeConfig(**(yaml.safe_load(meta.read_text()) or {})))
        probe.load_state_dict(load_file(str(path)), strict=True)
        return probe.eval()


def probe_metrics(path: str | Path | None = None) -> dict:
    """The held-out scores stored in the weights file when the probe was trained."""
    from safetensors import safe_open
    with safe_open(str(Path(path or DEFAULT_PATH).with_suffix(".safetensors")), "pt") as f:
        return json.loads((f.metadata() or {}).get("metrics", "{}"))


# -- training data: rendered frames through the autoencoder ---------------------------------------------
def random_controls(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 7) controls in CONTROL_NAMES order: a quarter closed mouths, poses like the clips' sway."""
    opened = rng.uniform(0, 1, n) ** 1.3
    opened[rng.random(n) < 0.25] = 0.0
    width = rng.uniform(0, 1, n)
    round_ = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 1, n))
    blink = np.where(rng.random(n) < 0.8, 0.0, rng.uniform(0, 1, n))
    head = np.clip(rng.normal(0, 0.4, (n, 3)), -1, 1)
    return np.column_stack([opened, width, round_, blink, head]).astype(np.float32)


GREEN_SCREEN = 0.15         # share of avatars on a key colour, as in the model's training clips


def make_dataset(n: int, first_seed: int, seed: int, autoencoder=None, batch: int = 25,
                 cfg: ProbeConfig | None = None, crisp: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """n crops (uint8) and their (n, 3) targets; 4 frames per identity. crisp: renderer frames at twice
    the probe's size (what a rig draws); else round trips through `autoencoder` at the probe's size."""
    from engine.toon.creator import training_identity
    from engine.toon.render import FaceControls, render_frame
    cfg = cfg or ProbeConfig()
    rng = np.random.default_rng(seed)
    controls = random_controls(rng, n)
    size = cfg.frame_size * (2 if crisp else 1)
    crops, frames = [], []
    for i in range(n):
        ident = training_identity(first_seed + i // 4, GREEN_SCREEN)
        frames.append(render_frame(ident, FaceControls.from_array(controls[i]), size))
        if len(frames) == batch or i == n - 1:
            x = np.stack(frames)
            if autoencoder is not None and not crisp:
                x = autoencoder.decode(autoencoder.encode(x))
            crops.append(crop_frames(x, cfg))
            frames = []
    return np.concatenate(crops), controls[:, :3].copy()


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Small shifts, brightness/contrast jitter and noise: generated frames are never exactly round trips."""
    n = x.shape[0]
    dy, dx = (int(v) for v in torch.randint(-3, 4, (2,), generator=gen))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    gain = 1 + 0.15 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 2
    bias = 0.1 * (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 2
    noise = 0.03 * torch.randn(x.shape, generator=gen)
    return (x * gain + bias + noise).clamp(-1.2, 1.2)


def train(train_crops: np.ndarray, train_y: np.ndarray, steps: int = 1500, batch: int = 64, lr: float = 3e-3,
          seed: int = 0, cfg: ProbeConfig | None = None) -> MouthProbe:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    probe = MouthProbe(cfg)
    x = MouthProbe.to_input(train_crops)
    y = torch.from_numpy(train_y).float()
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    weight = torch.tensor([2.0, 1.0, 1.0])   # mouth_open is what lip sync needs
    probe.train()
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        xb = _augment(x[idx], gen)
        if step % 2:
            xb = xb.flip(3)   # the mouth is left-right symmetric; poses are not, so flip half the batches
        loss = ((probe(xb) - y[idx]) ** 2 * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            log.info("probe step %d/%d loss %.4f", step + 1, steps, float(loss.detach()))
    return probe.eval()


def score(probe: MouthProbe, crops: np.ndarray, y: np.ndarray) -> dict:
    """R^2 and Pearson correlation per output on held-out crops."""
    with torch.no_grad():
        pred = probe(MouthProbe.to_input(crops)).numpy()
    out = {}
    for j, name in enumerate(OUTPUTS):
        resid = ((pred[:, j] - y[:, j]) ** 2).sum()
        total = ((y[:, j] - y[:, j].mean()) ** 2).sum()
        out[name] = {"r2": float(1 - resid / max(total, 1e-12)),
                     "pearson": float(np.corrcoef(pred[:, j], y[:, j])[0, 1]),
                     "mae": float(np.abs(pred[:, j] - y[:, j]).mean())}
    closed = y[:, 0] < 0.02
    out["closed_mean_open"] = float(pred[closed, 0].mean()) if closed.any() else float("nan")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="Train the toon mouth probe on autoencoder round trips and crisp renders.")
    p.add_argument("--out", default=str(DEFAULT_PATH))
    p.add_argument("--train", type=int, default=2400, help="training frames of each kind (4 per identity)")
    p.add_argument("--test", type=int, default=400, help="held-out frames of each kind (other identities)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    from engine.codecs.autoencoder import load_default
    ae = load_default()
    t0 = time.time()
    # identity seeds 50000+/55000+ (train) and 60000+/65000+ (held out): disjoint from the model's
    # clips (seeds below 50000) and the evaluation's (100000+)
    trips = make_dataset(args.train, 50000, seed=1, autoencoder=ae)
    crisp = make_dataset(args.train, 55000, seed=3, crisp=True)
    xtr, ytr = np.concatenate([trips[0], crisp[0]]), np.concatenate([trips[1], crisp[1]])
    held_out = {"held_out_round_trip": make_dataset(args.test, 60000, seed=2, autoencoder=ae),
                "held_out_crisp": make_dataset(args.test, 65000, seed=4, crisp=True)}
    log.info("data: %d training and %d held-out frames in %.0f s", len(xtr), 2 * args.test, time.time() - t0)
    t1 = time.time()
    probe = train(xtr, ytr, steps=args.steps)
    log.info("trained in %.0f s", time.time() - t1)
    metrics = {name: score(probe, x, y) for name, (x, y) in held_out.items()}
    for name, m in metrics.items():
        log.info("%s (unseen identities): %s", name, m)
    probe.save(args.out, {"train_frames": len(xtr), "test_frames": 2 * args.test, "steps": args.steps, **metrics})


if __name__ == "__main__":
    main()

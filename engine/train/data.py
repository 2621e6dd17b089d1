"""The latent clip data set: toon clips rendered, encoded to latents, with log-mel features.

Why cached shards: rendering + encoding is the expensive part (the autoencoder's encoder is
~40 ms a frame on a CPU) and every stage reads the same clips many times, so it is done once
and stored as safetensors shards. A shard is a unit of work: under torchrun rank r builds the
shards with index % world == r, an interrupted build resumes by skipping finished shards, and
an index file (`dataset.yaml`) is written last, so a folder with one is complete.

    python -m engine.train.data --config recipe.yaml --out runs/toon/data

Per clip: `latents` (T, C, h, w) from the autoencoder, `audio` (T, D) log-mel features (one row
per video frame, a latent frame per video frame in the toon domain), `reference` (C, h, w): the
identity drawn in its neutral pose, the image a user would give as the avatar.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file

from engine.clips.clip import make_clip
from engine.clips.scene import clip_audio
from engine.codecs.autoencoder import ToonAutoencoder
from engine.codecs.logmel import LogMelEncoder
from engine.config import SAMPLE_RATE
from engine.files import atomic_write, atomic_write_text
from engine.toon.creator import training_identity
from engine.toon.identity import random_identity
from engine.toon.render import FaceControls, render_frame
from engine.train.dist import Dist, setup, teardown
from engine.train.recipe import DataConfig, load_recipe

log = logging.getLogger(__name__)

INDEX = "dataset.yaml"


REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve(path: str | Path) -> Path:
    """A recipe path as given, or (when relative and absent) relative to the repository root."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists() or path.with_suffix(".safetensors").exists():
        return path
    return REPO_ROOT / path


def load_autoencoder(path: str | Path) -> ToonAutoencoder:
    path = resolve(path)
    if not path.with_suffix(".safetensors").is_file():
        raise ValueError(f"autoencoder weights not found at {path.with_suffix('.safetensors')}: train it first "
                         "(python -m engine.train.train_autoencoder ... --export engine/models/toon/autoencoder) "
                         "or set data.autoencoder in the recipe")
    return ToonAutoencoder.load(path)


def n_frames(cfg: DataConfig) -> int:
    return int(round(cfg.seconds * cfg.fps))


def encode_clip(seed: int, cfg: DataConfig, ae: ToonAutoencoder, mel: LogMelEncoder) -> dict[str, torch.Tensor]:
    """One clip: latents (T, C, h, w), audio (T, D), reference (C, h, w); T = seconds * fps."""
    clip = make_clip(seed, fps=cfg.fps, seconds=cfg.seconds, audio=clip_audio(cfg.audio))
    identity = training_identity(seed, cfg.green_screen)
    clip = dataclasses.replace(clip, identity=identity)
    frames = clip.render(cfg.image_size)
    with torch.no_grad():
        latents = torch.cat([ae.encode(frames[i:i + cfg.encode_batch])
                             for i in range(0, len(frames), cfg.encode_batch)])
        neutral = np.array(render_frame(identity, FaceControls(), cfg.image_size))
        reference = ae.encode(neutral)[0]
    audio = mel.encode(clip.audio)
    t = min(latents.shape[0], audio.shape[0])
    if t < clip.n_frames:
        log.warning("clip %d: %d frames of audio features for %d video frames; using %d", seed, audio.shape[0],
                    clip.n_frames, t)
    return {"latents": latents[:t].float(), "audio": audio[:t].float(), "reference": reference.float()}


def shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.safetensors"


def build(cfg: DataConfig, out: str | Path, d: Dist) -> Path:
    """Write every shard this rank owns (skipping finished ones), then the index on rank 0."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / INDEX).exists():
        meta = yaml.safe_load((out / INDEX).read_text())
        if meta.get("config") != _config_dict(cfg):
            raise ValueError(f"{out} holds a data set built with other settings; use another --out or delete it")
        log.info("data set %s is complete", out)
        return out
    clip_audio(cfg.audio)     # bad data.audio settings: one clear line before any work
    ae = load_autoencoder(cfg.autoencoder)
    mel = LogMelEncoder(sample_rate=SAMPLE_RATE, fps=cfg.fps, **cfg.logmel)
    shards = (cfg.clips + cfg.shard_clips - 1) // cfg.shard_clips
    mine = [i for i in range(shards) if i % d.world == d.rank]
    bar = d.progress(total=cfg.clips, desc="data")
    for i in mine:
        seeds = list(range(cfg.first_seed + i * cfg.shard_clips,
                           cfg.first_seed + min(cfg.clips, (i + 1) * cfg.shard_clips)))
        path = shard_path(out, i)
        if not path.exists():
            clips = [encode_clip(s, cfg, ae, mel) for s in seeds]
            t = min(c["latents"].shape[0] for c in clips)
            tensors = {
                "latents": torch.stack([c["latents"][:t] for c in clips]).contiguous(),
                "audio": torch.stack([c["audio"][:t] for c in clips]).contiguous(),
                "reference": torch.stack([c["reference"] for c in clips]).contiguous(),
                "seeds": torch.tensor(seeds, dtype=torch.int64),
            }
            atomic_write(path, lambda tmp: save_file(tensors, tmp))
        bar.update(len(seeds) * d.world)
    bar.close()
    d.barrier()
    if d.is_main:
        first = load_file(str(shard_path(out, 0)))
        meta = {"config": _config_dict(cfg), "shards": shards, "clips": cfg.clips,
                "latent_shape": list(first["latents"].shape[2:]), "audio_dim": int(first["audio"].shape[-1]),
                "autoencoder": asdict(ae.cfg) | {"enc_channels": list(ae.cfg.enc_channels),
                                                 "dec_channels": list(ae.cfg.dec_channels)},
                "logmel": dict(cfg.logmel)}
        atomic_write_text(out / INDEX, yaml.safe_dump(meta, sort_keys=False))
    d.barrier()
    return out


def _config_dict(cfg: DataConfig) -> dict:
    """The settings a built data set must match (an empty `audio`, the espeak-only clips, and no
    green screens are left out so data sets built before those settings existed still match)."""
    return {k: v for k, v in asdict(cfg).items()
            if k != "encode_batch" and not (k in ("audio", "green_screen") and not v)}


def mouth_maps(seeds: list[int], image_size: int, latent_hw: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) in 0..1: the latent cells where each clip's mouth and jaw move, from the renderer.

    Why: the mouth covers two or three of the 16x16 latent cells, so in a plain MSE the part of a
    clip that audio explains is about one percent of the loss and the teacher learns to copy the
    reference's closed mouth (measured: lip-sync correlation 0.01). Talking-head training weights
    a lip region found by a landmark detector; here the renderer is the detector: the identity
    drawn with the mouth shut and wide open (rounded and spread too), differenced, pooled to the
    latent grid and normalised to peak 1.
    """
    h, w = latent_hw
    maps = []
    for seed in seeds:
        ident = random_identity(int(seed))
        shut = render_frame(ident, FaceControls(), image_size).astype(np.float32)
        diff = np.zeros(shut.shape[:2], np.float32)
        for c in (FaceControls(mouth_open=1.0), FaceControls(mouth_open=0.6, mouth_round=1.0, mouth_width=0.0),
                  FaceControls(mouth_open=0.3, mouth_width=1.0)):
            diff = np.maximum(diff, np.abs(render_frame(ident, c, image_size).astype(np.float32) - shut).mean(-1))
        cells = torch.from_numpy(diff)[None, None]
        pooled = torch.nn.functional.adaptive_max_pool2d(cells, (h, w))[0, 0]
        maps.append(pooled / pooled.max().clamp_min(1e-6))
    return torch.stack(maps)


def mouth_weight(mouth: torch.Tensor, strength: float) -> torch.Tensor:
    """Per-cell loss weights (b, 1, 1, h, w) = 1 + strength * mouth map, normalised to mean 1."""
    w = 1.0 + strength * mouth
    return (w / w.mean(dim=(1, 2), keepdim=True))[:, None, None]


class LatentClips:
    """All clips of a built data set, in memory (small), with seeded segment sampling."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if not (folder / INDEX).exists():
            raise ValueError(f"{folder} is not a finished data set (no {INDEX}); run python -m engine.train.data first")
        self.meta = yaml.safe_load((folder / INDEX).read_text())
        parts = [load_file(str(shard_path(folder, i))) for i in range(self.meta["shards"])]
        t = min(p["latents"].shape[1] for p in parts)
        self.latents = torch.cat([p["latents"][:, :t] for p in parts])
        self.audio = torch.cat([p["audio"][:, :t] for p in parts])
        self.reference = torch.cat([p["reference"] for p in parts])
        self.seeds = torch.cat([p["seeds"] for p in parts])

    def __len__(self) -> int:
        return self.latents.shape[0]

    @functools.cached_property
    def mouth(self) -> torch.Tensor:
        """(N, h, w) mouth maps of the clips, drawn on first use (stages that never weight by them skip it)."""
        return mouth_maps(self.seeds.tolist(), self.meta["config"]["image_size"], self.latent_shape[1:])

    @property
    def clip_frames(self) -> int:
        return self.latents.shape[1]

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return tuple(self.latents.shape[2:])  # type: ignore[return-value]

    @property
    def audio_dim(self) -> int:
        return self.audio.shape[-1]

    def segment(self, clip: int, start: int, frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.latents[clip, start:start + frames], self.audio[clip, start:start + frames],
                self.reference[clip])

    def batch(self, size: int, frames: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`size` random segments of `frames` frames: latents (b, F, C, h, w), audio (b, F, D), ref (b, C, h, w)."""
        return self.draw(size, frames, gen)[:3]

    def batch_with_mouth(self, size: int, frames: int, gen: torch.Generator
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`batch` (the same draw for the same generator) plus each segment's mouth map (b, h, w)."""
        x0, audio, ref, clips = self.draw(size, frames, gen)
        return x0, audio, ref, self.mouth[clips]

    def draw(self, size: int, frames: int, gen: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """`batch` plus the clip index of each segment (for per-clip data such as `mouth`)."""
        if frames > self.clip_frames:
            raise ValueError(f"segments of {frames} frames asked for, but clips hold only {self.clip_frames}")
        clips = torch.randint(0, len(self), (size,), generator=gen).tolist()
        starts = torch.randint(0, self.clip_frames - frames + 1, (size,), generator=gen).tolist()
        parts = [self.segment(c, s, frames) for c, s in zip(clips, starts)]
        x0, audio, ref = (torch.stack(list(x)) for x in zip(*parts))
        return x0, audio, ref, clips

    def check_model(self, model_cfg) -> None:
        """Fail early when the recipe's model does not fit these latents/features."""
        c, h, w = self.latent_shape
        if c != model_cfg.out_dim:
            raise ValueError(f"data latents have {c} channels but the model's out_dim is {model_cfg.out_dim}")
        if self.audio_dim != model_cfg.audio_dim:
            raise ValueError(f"data audio features have {self.audio_dim} dims but the model's audio_dim is "
                             f"{model_cfg.audio_dim}")
        if model_cfg.audio_pack != 1:
            raise ValueError(f"toon data has one audio row per latent frame; model audio_pack is {model_cfg.audio_pack}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="recipe YAML (defaults: the toon recipe)")
    p.add_argument("--out", required=True, help="data set folder")
    args = p.parse_args(argv)
    recipe = load_recipe(args.config)
    d = setup(threads=recipe.threads or None)
    try:
        build(recipe.data, args.out, d)
    finally:
        teardown(d)


if __name__ == "__main__":
    main()

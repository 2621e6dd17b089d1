"""Tiny distillation runs for the training tests: a random 32-px autoencoder, a 2-layer model, 2 clips.

Everything is generated into pytest's temp folders; stages run either in-process (one rank, no
process group) or as real `torchrun --nproc_per_node 2` subprocesses on gloo.
Import the fixtures by name: ``from tests.fixtures_train import tiny_recipe, tiny_data  # noqa: F401``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


def write_tiny_recipe(folder: Path, **sections: dict) -> Path:
    """A recipe whose every stage takes well under a second per step; `sections` override keys."""
    from engine.codecs.autoencoder import ToonAutoencoder, ToonAutoencoderConfig

    folder.mkdir(parents=True, exist_ok=True)
    ae_path = folder / "ae.safetensors"
    if not ae_path.exists():
        torch.manual_seed(0)
        ToonAutoencoder(ToonAutoencoderConfig(image_size=32, latent_channels=4, enc_channels=(8, 8),
                                              dec_channels=(8, 8))).save(ae_path)
    recipe = {
        "name": "tiny",
        "threads": 1,
        "model": dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, in_dim=9, out_dim=4, text_dim=0, text_len=0,
                      freq_dim=16, audio_dim=16, audio_pack=1, audio_hidden=8, audio_first_block=0),
        "stream": dict(block_frames=2, timesteps=[1000, 600, 300], temporal_frames=2),
        "data": dict(clips=2, seconds=0.6, image_size=32, shard_clips=1, autoencoder=str(ae_path),
                     logmel=dict(n_mels=8, context_frames=2)),
        "teacher": dict(steps=4, batch=2, frames=8, min_frames=4, ckpt_every=2, log_every=1, mouth_weight=8.0,
                        audio_dropout=0.3),
        "ode": dict(trajectories=4, ode_steps=4, gen_batch=2, steps=4, batch=2, ckpt_every=2, log_every=1,
                    guidance=2.0, mouth_weight=8.0),
        "dmd": dict(steps=2, fake_per_student=2, batch=1, rollout_blocks=4, grad_blocks=1, ckpt_every=1,
                    log_every=1, guidance=2.0),
    }
    for key, changes in sections.items():
        recipe[key] = {**recipe.get(key, {}), **changes}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def torchrun(module: str, *args: str, nproc: int = 2, timeout: float = 180) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node N -m module args`; raises with the output on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", module, *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory) -> Path:
    return write_tiny_recipe(tmp_path_factory.mktemp("recipe"))


@pytest.fixture(scope="session")
def tiny_data(tiny_recipe, tmp_path_factory) -> Path:
    """The tiny data set, built once per session in-process (one rank)."""
    from engine.train.data import build
    from engine.train.dist import Dist
    from engine.train.recipe import load_recipe

    out = tmp_path_factory.mktemp("data")
    build(load_recipe(tiny_recipe).data, out, Dist())
    return out


@pytest.fixture(scope="session")
def tiny_teacher(tiny_recipe, tiny_data, tmp_path_factory) -> Path:
    """Teacher weights after the tiny recipe's few steps (in-process)."""
    from engine.train import teacher
    from engine.train.dist import Dist
    from engine.train.recipe import load_recipe

    return teacher.train(load_recipe(tiny_recipe), tiny_data, tmp_path_factory.mktemp("teacher"), Dist())

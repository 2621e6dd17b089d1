"""The whole distillation, data to shipped card, on two ranks; and the toon card's size budget."""
from __future__ import annotations

import json

import numpy as np
import torch
import yaml

from engine.card import load_card
from engine.model import CausalDiT
from engine.stream import AvatarStream
from engine.train.pipeline import MAX_CARD_BYTES, logmel_settings
from engine.train.recipe import Recipe
from tests.fixtures_train import tiny_recipe, torchrun  # noqa: F401


def test_pipeline_under_torchrun_writes_a_card_the_engine_streams_with(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    torchrun("engine.train.pipeline", "--config", str(tiny_recipe), "--out", str(out), timeout=300)
    card_dir = out / "card"
    data = yaml.safe_load((card_dir / "model.yaml").read_text())
    assert data["audio"]["encoder"] == "logmel" and data["audio"]["n_mels"] == 8
    assert data["decoder"] == {"kind": "toon", "weights": "autoencoder.safetensors"}
    assert sum(f.stat().st_size for f in card_dir.iterdir()) <= MAX_CARD_BYTES
    assert set(json.loads((out / "timings.json").read_text())) == {"data", "teacher", "ode", "dmd"}
    stream = AvatarStream(load_card(card_dir), seed=0)
    stream.start(np.full((48, 40, 3), 128, np.uint8))
    frames = stream.push_audio(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)
    frames += stream.flush()
    assert len(frames) == 26 and frames[0].shape == (32, 32, 3)


def test_toon_recipe_card_fits_the_size_budget():
    recipe = Recipe()
    with torch.device("meta"):
        params = sum(p.numel() for p in CausalDiT(recipe.model).parameters())
    assert params * 4 < MAX_CARD_BYTES - 4 * 2**20     # float32 weights, room left for the autoencoder
    assert logmel_settings(recipe.data.logmel)["n_mels"] * logmel_settings({})["context_frames"] == recipe.model.audio_dim

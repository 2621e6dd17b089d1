"""The latent clip data set: built once, sharded over ranks, identical however many ranks built it."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from engine.train.data import INDEX, LatentClips, build, shard_path
from engine.train.dist import Dist
from engine.train.recipe import load_recipe, recipe_from_dict
from tests.fixtures_train import tiny_data, tiny_recipe, torchrun  # noqa: F401


def test_data_built_by_two_ranks_equals_single_process_build(tiny_recipe, tiny_data, tmp_path):
    out = tmp_path / "data2"
    torchrun("engine.train.data", "--config", str(tiny_recipe), "--out", str(out))
    assert (out / INDEX).exists()
    for i in range(2):
        a, b = load_file(str(shard_path(tiny_data, i))), load_file(str(shard_path(out, i)))
        assert set(a) == {"latents", "audio", "reference", "seeds"}
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_finished_data_set_is_not_rebuilt(tiny_recipe, tiny_data):
    before = {p.name: p.stat().st_mtime_ns for p in tiny_data.iterdir()}
    build(load_recipe(tiny_recipe).data, tiny_data, Dist())
    assert {p.name: p.stat().st_mtime_ns for p in tiny_data.iterdir()} == before


def test_data_set_built_with_other_settings_is_refused(tiny_recipe, tiny_data):
    cfg = load_recipe(tiny_recipe).data
    cfg.seconds = 0.8
    with pytest.raises(ValueError, match="other settings"):
        build(cfg, tiny_data, Dist())


def test_segments_hold_latents_audio_and_reference_of_one_clip(tiny_recipe, tiny_data):
    clips = LatentClips(tiny_data)
    recipe = load_recipe(tiny_recipe)
    assert len(clips) == 2 and clips.clip_frames == 15
    assert clips.latent_shape == (4, 8, 8) and clips.audio_dim == 16
    clips.check_model(recipe.model)
    x, audio, ref = clips.batch(3, 6, torch.Generator().manual_seed(0))
    assert x.shape == (3, 6, 4, 8, 8) and audio.shape == (3, 6, 16) and ref.shape == (3, 4, 8, 8)
    x2, _, _ = clips.batch(3, 6, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_recipe_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown"):
        recipe_from_dict({"teacher": {"stepz": 3}})
    with pytest.raises(ValueError, match="unknown recipe sections"):
        recipe_from_dict({"trainer": {}})

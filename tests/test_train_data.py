"""The latent clip data set: built once, sharded over ranks, identical however many ranks built it."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from engine.train.data import INDEX, LatentClips, build, mouth_maps, mouth_weight, shard_path
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


def test_mouth_map_finds_the_rendered_mouth_of_each_identity():
    maps = mouth_maps([0, 1, 2, 3], 256, (16, 16))
    assert maps.shape == (4, 16, 16) and float(maps.min()) >= 0.0
    assert torch.allclose(maps.amax(dim=(1, 2)), torch.ones(4))
    for m in maps:
        row, col = divmod(int(m.argmax()), 16)
        assert 8 <= row <= 11 and 6 <= col <= 9, (row, col)   # below the nose, centred: the lips
        assert float(m[:4].max()) == 0.0                       # hair/forehead never move with the mouth
        assert int((m > 0.2).sum()) < 48                        # a region, not the whole face


def test_mouth_weight_has_mean_one_and_peaks_on_the_mouth():
    mouth = mouth_maps([5], 256, (16, 16))
    w = mouth_weight(mouth, 16.0)
    assert w.shape == (1, 1, 1, 16, 16)
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-5)
    assert float(w.max()) / float(w.min()) == pytest.approx(17.0, rel=1e-4)
    assert int(w.flatten().argmax()) == int(mouth.flatten().argmax())


def test_batches_carry_the_mouth_map_of_their_clip(tiny_recipe, tiny_data):
    clips = LatentClips(tiny_data)
    x, audio, ref, mouth = clips.batch_with_mouth(3, 6, torch.Generator().manual_seed(0))
    assert mouth.shape == (3, 8, 8)
    x2, _, _ = clips.batch(3, 6, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    for i in range(3):
        clip = next(c for c in range(len(clips)) if torch.equal(clips.reference[c], ref[i]))
        assert torch.equal(mouth[i], clips.mouth[clip])


def test_a_green_screen_fraction_puts_that_share_of_clip_avatars_on_a_key_colour():
    from engine.toon.chroma import key_name
    from engine.toon.identity import random_identity
    from engine.toon.creator import training_identity
    from engine.train.data import _config_dict
    from engine.train.recipe import DataConfig
    keyed = [training_identity(s, 0.15) for s in range(400)]
    on_key = [i for i in keyed if i.background == "chroma"]
    assert 0.10 < len(on_key) / len(keyed) < 0.20
    assert all(key_name(i.bg_a) is not None and i.bg_a == i.bg_b for i in on_key)
    assert {key_name(i.bg_a) for i in on_key} == {"green", "blue", "magenta"}
    # the same avatar otherwise, and none at all without the setting
    s = next(s for s in range(400) if keyed[s].background == "chroma")
    assert keyed[s].skin == random_identity(s).skin and keyed[s].hair_style == random_identity(s).hair_style
    assert all(training_identity(s, 0.0) == random_identity(s) for s in range(50))
    # data sets built before the setting existed still match their recipe
    assert "green_screen" not in _config_dict(DataConfig()) and _config_dict(DataConfig(green_screen=0.1))["green_screen"]

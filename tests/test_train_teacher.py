"""The bidirectional teacher: flow-matching steps on two ranks, exact resume, and its Euler ODE."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from engine.model import CausalDiT
from engine.schedule import schedule_for
from engine.train import teacher
from engine.train.dist import Dist, load_checkpoint, read_losses
from engine.train.loop import CHECKPOINT, LOSSES
from engine.train.recipe import load_recipe, replace_section
from tests.fixtures_train import tiny_data, tiny_recipe, torchrun  # noqa: F401


def test_teacher_trains_under_torchrun_with_two_ranks(tiny_recipe, tiny_data, tmp_path):
    out = tmp_path / "teacher"
    torchrun("engine.train.teacher", "--config", str(tiny_recipe), "--data", str(tiny_data), "--out", str(out))
    losses = read_losses(out / LOSSES)
    assert [r["step"] for r in losses] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and r["loss"] == r["loss"] for r in losses)
    assert load_checkpoint(out / CHECKPOINT)["step"] == 4
    state = load_file(str(out / teacher.WEIGHTS))
    assert set(state) == set(CausalDiT(load_recipe(tiny_recipe).model).state_dict())


def test_resumed_teacher_continues_from_saved_step_and_matches_uninterrupted_run(tiny_recipe, tiny_data, tmp_path):
    recipe = load_recipe(tiny_recipe)
    teacher.train(replace_section(recipe, "teacher", steps=2), tiny_data, tmp_path / "a", Dist())
    assert load_checkpoint(tmp_path / "a" / CHECKPOINT)["step"] == 2
    teacher.train(recipe, tiny_data, tmp_path / "a", Dist(), resume=True)
    teacher.train(recipe, tiny_data, tmp_path / "b", Dist())
    assert [r["step"] for r in read_losses(tmp_path / "a" / LOSSES)] == [1, 2, 3, 4]
    a = load_file(str(tmp_path / "a" / teacher.WEIGHTS))
    b = load_file(str(tmp_path / "b" / teacher.WEIGHTS))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_checkpoint_is_not_overwritten_without_resume(tiny_recipe, tiny_data, tmp_path):
    recipe = replace_section(load_recipe(tiny_recipe), "teacher", steps=2)
    teacher.train(recipe, tiny_data, tmp_path, Dist())
    with pytest.raises(ValueError, match="--resume"):
        teacher.train(recipe, tiny_data, tmp_path, Dist())


def test_teacher_ode_starts_at_noise_and_records_every_stream_level(tiny_recipe):
    recipe = load_recipe(tiny_recipe)
    torch.manual_seed(0)
    model = CausalDiT(recipe.model).eval()
    schedule = schedule_for(recipe.stream)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(2, 4, 4, 8, 8, generator=g)
    ref, audio = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 16, generator=g)
    traj = teacher.teacher_ode(model, ref, audio, noise, 6, recipe.stream)
    assert traj.level_t == schedule.levels(recipe.stream)
    assert traj.levels.shape == (2, 3, 4, 4, 8, 8) and traj.x0.shape == noise.shape
    assert torch.equal(traj.levels[:, 0], noise)          # level 0 is t=1000: pure noise
    sigmas = teacher.ode_sigmas(schedule, 6, [0.9, 0.5])
    assert sigmas[0] == 1.0 and sigmas[-1] == 0.0 and {0.9, 0.5} <= set(sigmas)
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))


def test_teacher_ode_of_an_exact_flow_lands_on_the_data(tiny_recipe):
    """For data that is a single point x*, the exact flow is (x_t - x*)/sigma; Euler then reaches x* exactly."""
    recipe = load_recipe(tiny_recipe)
    target = torch.randn(1, 4, 4, 8, 8)

    class PointFlow(torch.nn.Module):
        cfg = recipe.model

        def forward(self, x, cond, t, audio, pos, memory=None, text_kv=None):
            sigma = (t / 1000.0)[..., None, None, None].clamp_min(1e-6)
            flow = (x - torch.cat([x[:, :1], target], 1)) / sigma
            return flow, [], []

    noise = torch.randn_like(target)
    traj = teacher.teacher_ode(PointFlow(), torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 16), noise, 8, recipe.stream)
    assert torch.allclose(traj.x0, target, atol=1e-5)
    sig = schedule_for(recipe.stream).sigma(torch.tensor(traj.level_t))
    for j, s in enumerate(sig):
        assert torch.allclose(traj.levels[:, j], (1 - s) * target + s * noise, atol=1e-5)

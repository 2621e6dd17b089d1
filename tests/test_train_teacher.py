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


def test_audio_guidance_extrapolates_from_the_zero_audio_branch(tiny_recipe):
    recipe = load_recipe(tiny_recipe)
    torch.manual_seed(0)
    model = CausalDiT(recipe.model).eval()
    g = torch.Generator().manual_seed(3)
    x, ref = torch.randn(2, 4, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    audio, t = torch.randn(2, 4, 16, generator=g), torch.full((2, 4), 700.0)
    with torch.no_grad():
        cond = teacher.clip_flow(model, ref, x, audio, t)
        uncond = teacher.clip_flow(model, ref, x, torch.zeros_like(audio), t)
        assert torch.equal(teacher.guided_flow(model, ref, x, audio, t, 1.0), cond)
        assert torch.allclose(teacher.guided_flow(model, ref, x, audio, t, 0.0), uncond, atol=1e-6)
        assert torch.allclose(teacher.guided_flow(model, ref, x, audio, t, 3.0), uncond + 3.0 * (cond - uncond),
                              atol=1e-5)
        assert not torch.allclose(cond, uncond)


def test_mouth_weighted_loss_counts_mouth_errors_more_than_background_errors(tiny_recipe):
    """Same-size error on a heavy cell vs a light one: the weighted loss tells them apart, plain MSE cannot."""
    from engine.train.data import mouth_weight

    recipe = load_recipe(tiny_recipe)
    schedule = schedule_for(recipe.stream)
    mouth = torch.zeros(1, 8, 8)
    mouth[0, 5, 4] = 1.0
    weight = mouth_weight(mouth, 16.0)
    x0, noise = torch.zeros(1, 2, 4, 8, 8), torch.zeros(1, 2, 4, 8, 8)
    t = torch.full((1, 2), 500.0)

    def model_off_at(row, col):
        class Off(torch.nn.Module):
            cfg = recipe.model

            def forward(self, x, cond, tt, audio, pos, memory=None, text_kv=None):
                flow = torch.zeros_like(x)
                flow[..., row, col] = 1.0
                return flow, [], []
        return Off()

    ref, audio = torch.zeros(1, 4, 8, 8), torch.zeros(1, 2, 16)
    plain = [teacher.flow_matching_loss(model_off_at(*rc), x0, ref, audio, t, noise, schedule) for rc in ((5, 4), (0, 0))]
    heavy, light = (teacher.flow_matching_loss(model_off_at(*rc), x0, ref, audio, t, noise, schedule, weight)
                    for rc in ((5, 4), (0, 0)))
    assert plain[0] == plain[1]
    assert float(heavy / light) == pytest.approx(17.0, rel=1e-4)


def test_teacher_init_fine_tunes_from_given_weights_and_bf16_steps_train(tiny_recipe, tiny_data, tmp_path):
    recipe = replace_section(load_recipe(tiny_recipe), "teacher", steps=2)
    first = teacher.train(recipe, tiny_data, tmp_path / "a", Dist())
    tuned = replace_section(recipe, "teacher", init=str(first), bf16=True, steps=1, lr=0.0)
    teacher.train(tuned, tiny_data, tmp_path / "b", Dist())
    a, b = load_file(str(first)), load_file(str(tmp_path / "b" / teacher.WEIGHTS))
    assert all(torch.equal(a[k], b[k]) for k in a)      # lr 0: the fine-tune starts exactly at `init`
    assert read_losses(tmp_path / "b" / LOSSES)[0]["loss"] > 0
    with pytest.raises(ValueError, match="teacher.init"):
        teacher.build_teacher(replace_section(recipe, "teacher", init=str(tmp_path / "none.safetensors")), 0)

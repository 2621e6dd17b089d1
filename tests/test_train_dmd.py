"""DMD: the student's rollout is the real sampler, its gradient points at the teacher, two ranks train."""
from __future__ import annotations

import os
import subprocess
import sys

import torch

from engine.config import ModelConfig, StreamConfig
from engine.model import CausalDiT
from engine.sampler import StreamingSampler
from engine.schedule import FlowSchedule
from engine.train import dmd
from engine.train.dist import load_checkpoint, read_losses
from engine.train.loop import CHECKPOINT, LOSSES
from tests.fixtures_train import REPO, tiny_data, tiny_recipe, tiny_teacher, torchrun  # noqa: F401


def test_dmd_trains_under_torchrun_with_two_ranks(tiny_recipe, tiny_data, tiny_teacher, tmp_path):
    out = tmp_path / "dmd"
    torchrun("engine.train.dmd", "--config", str(tiny_recipe), "--data", str(tiny_data), "--teacher",
             str(tiny_teacher), "--student", str(tiny_teacher), "--out", str(out))
    losses = read_losses(out / LOSSES)
    assert [r["student_step"] for r in losses] == [1, 2]
    assert all({"dmd", "fake", "gap", "grad_norm"} <= set(r) for r in losses)
    state = load_checkpoint(out / CHECKPOINT)
    assert state["step"] == 4 and {"model", "fake", "optimizer", "fake_optimizer"} <= set(state)
    assert (out / dmd.WEIGHTS).exists()


def _micro():
    torch.manual_seed(0)
    cfg = ModelConfig.micro()
    return CausalDiT(cfg), StreamConfig(block_frames=2, timesteps=(1000, 800, 400, 200), temporal_frames=2)


def test_rollout_emits_exactly_what_the_streaming_sampler_emits():
    model, stream = _micro()
    ref = torch.randn(1, 4, 4, 4)
    audio = torch.randn(1, 12, 12)
    with torch.no_grad():
        got, got_audio = dmd.rollout(model, stream, ref, audio, torch.Generator().manual_seed(5), grad_blocks=1)
    sampler = StreamingSampler(model, stream, generator=torch.Generator().manual_seed(5))
    sampler.start(ref)
    want = [sampler.step(audio[:, i * 2:(i + 1) * 2]) for i in range(6)]
    want = torch.cat([b for b in want if b is not None], dim=1)
    assert got.shape == (1, 6, 4, 4, 4) and torch.equal(got_audio, audio[:, :6])
    assert torch.allclose(got, want, atol=1e-6)


def test_rollout_gradient_reaches_weights_only_through_the_newest_blocks():
    model, stream = _micro()
    x0, _ = dmd.rollout(model, stream, torch.randn(1, 4, 4, 4), torch.randn(1, 12, 12),
                        torch.Generator().manual_seed(0), grad_blocks=1)
    old, new = x0[:, :4], x0[:, 4:]
    old.pow(2).sum().backward(retain_graph=True)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    new.pow(2).sum().backward()
    assert model.head.head.weight.grad is not None and model.head.head.weight.grad.abs().sum() > 0


def test_dmd_loss_gradient_is_normalised_fake_minus_real():
    schedule = FlowSchedule()
    x0 = torch.randn(2, 3, 4, 2, 2, requires_grad=True)
    real_target, fake_target = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    t = torch.full((2, 3), 500.0)
    loss, _ = dmd.dmd_loss(x0, lambda x, tt: real_target, lambda x, tt: fake_target, schedule, t, torch.randn_like(x0))
    loss.backward()
    weight = (x0.detach() - real_target).abs().mean(dim=(1, 2, 3, 4), keepdim=True)
    expected = (fake_target - real_target) / weight / x0.numel()
    assert torch.allclose(x0.grad, expected, atol=1e-6)


def _gaussian_x0(mean: torch.Tensor, std: float, schedule: FlowSchedule):
    """Exact E[x0 | x_t] for x0 ~ N(mean, std^2): the ideal score network of a Gaussian."""
    def x0(x_t, t):
        s = schedule.sigma(t)[..., None, None, None]
        gain = (1 - s) * std ** 2 / ((1 - s) ** 2 * std ** 2 + s ** 2)
        return mean + gain * (x_t - (1 - s) * mean)
    return x0


def test_student_following_dmd_gradient_closes_the_gap_to_the_teacher():
    """Toy: the teacher's data is N(2, 0.5^2); the student emits mu + 0.5 eps; the fake score is the exact
    score of the student's current distribution. Descending the DMD loss must move mu to 2."""
    schedule = FlowSchedule()
    g = torch.Generator().manual_seed(0)
    mu = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([mu], lr=0.05)
    real = _gaussian_x0(torch.tensor(2.0), 0.5, schedule)
    gaps = []
    for _ in range(60):
        x0 = mu + 0.5 * torch.randn(16, 1, 1, 1, 1, generator=g)
        fake = _gaussian_x0(mu.detach(), 0.5, schedule)
        t = schedule.timesteps[torch.randint(20, 980, (16,), generator=g)][:, None]
        loss, _ = dmd.dmd_loss(x0, real, fake, schedule, t, torch.randn(x0.shape, generator=g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        gaps.append(abs(2.0 - mu.item()))
    assert gaps[-1] < 0.2 < gaps[0] and gaps[-1] < gaps[len(gaps) // 2] < gaps[0]


def test_resumed_dmd_continues_from_saved_step_and_matches_uninterrupted_run(tiny_recipe, tiny_data, tiny_teacher,
                                                                             tmp_path):
    from safetensors.torch import load_file

    from engine.train.dist import Dist
    from engine.train.recipe import load_recipe, replace_section

    recipe = load_recipe(tiny_recipe)
    dmd.train(replace_section(recipe, "dmd", steps=1), tiny_data, tiny_teacher, tiny_teacher, tmp_path / "a", Dist())
    assert load_checkpoint(tmp_path / "a" / CHECKPOINT)["step"] == 2
    dmd.train(recipe, tiny_data, tiny_teacher, tiny_teacher, tmp_path / "a", Dist(), resume=True)
    dmd.train(recipe, tiny_data, tiny_teacher, tiny_teacher, tmp_path / "b", Dist())
    assert [r["student_step"] for r in read_losses(tmp_path / "a" / LOSSES)] == [1, 2]
    a, b = load_file(str(tmp_path / "a" / dmd.WEIGHTS)), load_file(str(tmp_path / "b" / dmd.WEIGHTS))
    assert all(torch.equal(a[k], b[k]) for k in a)


_WORKER = '''
import atexit, os, sys
import torch, torch.distributed as td
from engine.train.dist import setup, teardown
d = setup()
t = torch.ones(1000)
kept = td.all_reduce(t, async_op=True)   # a handle that outlives the group, as in the DMD stage
kept.wait()

def at_shutdown():
    names = [open(f"/proc/self/task/{x}/comm").read().strip() for x in os.listdir("/proc/self/task")]
    with open(os.path.join(sys.argv[1], f"rank{d.rank}.txt"), "w") as f:
        f.write("\\n".join(names))

atexit.register(at_shutdown)
teardown(d)
'''


def test_torchrun_workers_never_reach_interpreter_shutdown_with_gloo_threads(tmp_path):
    """The flaky SIGABRT ('terminate called without an active exception', rank 1, after training): gloo's
    threads outlived destroy_process_group and were torn down during interpreter shutdown. A worker that
    still holds a collective's handle must not reach that shutdown with those threads running."""
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        seen = tmp_path / f"rank{rank}.txt"
        alive = seen.read_text().split() if seen.exists() else []
        assert not [name for name in alive if "gloo" in name], alive

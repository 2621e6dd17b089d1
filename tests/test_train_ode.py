"""ODE backfill: windows laid out exactly as the streaming sampler runs them, trained on two ranks."""
from __future__ import annotations

import torch

from engine.cache import StreamCache
from engine.config import ModelConfig, StreamConfig
from engine.model import CausalDiT
from engine.sampler import StreamingSampler
from engine.schedule import schedule_for
from engine.train import ode_backfill
from engine.train.dist import load_checkpoint, read_losses
from engine.train.loop import CHECKPOINT, LOSSES
from engine.train.ode_backfill import GradCache, OdePairs, student_window, window_input, window_specs
from tests.fixtures_train import tiny_data, tiny_recipe, tiny_teacher, torchrun  # noqa: F401


def _record(calls):
    return [(c.kind, c.frames, c.memory_frames, c.first_frame, c.timesteps, c.frame_pos, c.memory_pos) for c in calls]


def test_ode_backfill_trains_under_torchrun_with_two_ranks(tiny_recipe, tiny_data, tiny_teacher, tmp_path):
    out = tmp_path / "ode"
    torchrun("engine.train.ode_backfill", "--config", str(tiny_recipe), "--data", str(tiny_data),
             "--teacher", str(tiny_teacher), "--out", str(out))
    assert [r["step"] for r in read_losses(out / LOSSES)] == [1, 2, 3, 4]
    assert load_checkpoint(out / CHECKPOINT)["step"] == 4
    pairs = OdePairs(out / ode_backfill.TRAJECTORIES)
    assert len(pairs) == 4 and pairs.levels.shape[1:3] == (3, 8)
    assert (out / ode_backfill.WEIGHTS).exists()


def test_every_window_matches_the_streaming_sampler_call_for_call_and_bit_for_bit():
    """Feed the sampler's own inputs to the training window: same calls, positions, levels and x0 to the
    last bit, because both make their calls through `engine.sampler` (prefill_anchor, update_anchor,
    window_step)."""
    torch.manual_seed(0)
    cfg = ModelConfig.micro()
    model = CausalDiT(cfg).eval()
    stream = StreamConfig(block_frames=2, timesteps=(1000, 800, 400, 200), temporal_frames=3)
    schedule = schedule_for(stream)
    n, bf, L = 6, 2, 4
    ref = torch.randn(1, cfg.out_dim, 4, 4)
    audio = torch.randn(1, n * bf, cfg.audio_dim)
    sampler = StreamingSampler(model, stream, generator=torch.Generator().manual_seed(3))
    sampler.record_calls = True
    seen = []
    sampler.on_call = lambda kind, info: seen.append((kind, info["x"].clone(), info["t"].clone(), info["flow"].clone()))
    sampler.start(ref)
    out = [sampler.step(audio[:, i * bf:(i + 1) * bf]) for i in range(n)] + sampler.flush()
    clean = torch.cat([b for b in out if b is not None], dim=1)
    denoise = [i for i, c in enumerate(sampler.calls) if c.kind == "denoise"]
    updates = [c for c in sampler.calls if c.kind == "update"]
    specs = window_specs(n, L, tail=True)
    assert len(specs) == len(denoise) == n + L - 1
    for spec, call_index in zip(specs, denoise):
        calls = []
        _, x, t, flow = seen[call_index]
        with torch.no_grad():
            x0, t_mine = student_window(model, stream, schedule, spec, ref, clean, audio, x, calls=calls)
        want = [sampler.calls[0]] + updates[:spec.start_block] + [sampler.calls[call_index]]
        assert _record(calls) == _record(want), f"window {spec.index}"
        assert torch.equal(t_mine, t)
        assert torch.equal(x0, schedule.x0_from_flow(x, flow, t)), f"window {spec.index}"


def test_window_blocks_sit_at_their_levels_newest_noisiest():
    specs = window_specs(5, 4, tail=False)
    assert [(s.blocks, s.levels) for s in specs] == [
        ([0], [0]), ([0, 1], [1, 0]), ([0, 1, 2], [2, 1, 0]), ([0, 1, 2, 3], [3, 2, 1, 0]), ([1, 2, 3, 4], [3, 2, 1, 0])]
    # levels[b, j, f] = 100*j + f: block b at level j must read level j's frames of block b
    levels = (100 * torch.arange(4)[:, None] + torch.arange(10)[None]).float()[None, :, :, None, None, None]
    x = window_input(levels, specs[4], block_frames=2)
    assert x.flatten().tolist() == [302, 303, 204, 205, 106, 107, 8, 9]


def test_grad_cache_hands_out_the_engine_cache_memory_and_keeps_gradients():
    torch.manual_seed(0)
    keys = [torch.randn(1, 4 * 3, 2, 8, requires_grad=True) for _ in range(2)]
    anchor = [torch.randn(1, 4, 2, 8) for _ in range(2)]
    plain, grad = StreamCache(2, 2), GradCache(2, 2)
    for cache in (plain, grad):
        cache.set_anchor(anchor, anchor)
        cache.push(keys, keys, frames=3)
        cache.push([k * 2 for k in keys], [k * 2 for k in keys], frames=3)
    for first, reindex in ((7, True), (7, False)):
        a, b = plain.memory(first, True, reindex), grad.memory(first, True, reindex)
        assert torch.equal(a.frame_pos, b.frame_pos)
        assert all(torch.equal(x, y) for x, y in zip(a.k, b.k))
    assert torch.equal(plain.frame_positions(4), grad.frame_positions(4))
    grad.memory(7, True, True).k[0].sum().backward()
    assert keys[0].grad is not None and keys[0].grad.abs().sum() > 0


def test_resumed_ode_backfill_reuses_trajectories_and_matches_uninterrupted_run(tiny_recipe, tiny_data, tiny_teacher,
                                                                                tmp_path):
    from safetensors.torch import load_file

    from engine.train.dist import Dist
    from engine.train.recipe import load_recipe, replace_section

    recipe = load_recipe(tiny_recipe)
    ode_backfill.train(replace_section(recipe, "ode", steps=2), tiny_data, tiny_teacher, tmp_path / "a", Dist())
    made = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "a" / ode_backfill.TRAJECTORIES).iterdir()}
    ode_backfill.train(recipe, tiny_data, tiny_teacher, tmp_path / "a", Dist(), resume=True)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "a" / ode_backfill.TRAJECTORIES).iterdir()} == made
    ode_backfill.train(recipe, tiny_data, tiny_teacher, tmp_path / "b", Dist())
    assert [r["step"] for r in read_losses(tmp_path / "a" / LOSSES)] == [1, 2, 3, 4]
    a = load_file(str(tmp_path / "a" / ode_backfill.WEIGHTS))
    b = load_file(str(tmp_path / "b" / ode_backfill.WEIGHTS))
    assert all(torch.equal(a[k], b[k]) for k in a)

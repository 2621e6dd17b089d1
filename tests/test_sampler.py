"""The streaming sampler as a specification: window plan, levels, emission, constant cost, anchors."""
from __future__ import annotations

import copy

import pytest
import torch

from engine.config import ModelConfig, StreamConfig
from engine.model import CausalDiT
from engine.sampler import SelfForcingSampler, StreamingSampler, plan_windows, window_step
from engine.schedule import FlowSchedule

LEVELS = [1000.0, 952.3810425, 769.2307739, 555.5556030]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CausalDiT(ModelConfig.micro()).eval()


def make(model, sampler_cls=StreamingSampler, seed=0, **stream):
    stream.setdefault("block_frames", 2)
    s = sampler_cls(model, StreamConfig(**stream), generator=torch.Generator().manual_seed(seed))
    s.record_calls = True
    s.start(torch.randn(4, 4, 4, generator=torch.Generator().manual_seed(99)))
    return s


def audio(model, s, seed=0):
    return torch.randn(s.audio_rows_per_block, model.cfg.audio_dim, generator=torch.Generator().manual_seed(seed))


def run(model, s, n_blocks):
    out = [s.step(audio(model, s, b)) for b in range(n_blocks)]
    return [b for b in out if b is not None] + s.flush()


def test_plan_windows_matches_the_authors_table_for_six_blocks():
    assert plan_windows(6, 4) == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 5), (2, 6), (3, 6), (4, 6), (5, 6)]
    assert len(plan_windows(56, 4)) == 59


def test_levels_are_the_warped_paper_timesteps():
    assert FlowSchedule().levels(StreamConfig()) == pytest.approx(LEVELS, abs=1e-4)


def test_passes_subdivide_each_level_towards_the_next():
    sched = FlowSchedule()
    levels = sched.levels(StreamConfig(passes=2))
    assert len(levels) == 8
    assert levels[::2] == pytest.approx(LEVELS, abs=1e-4)
    assert levels[1] == pytest.approx(sched.warp(900))
    assert levels[-1] == pytest.approx(sched.warp(100))


@pytest.mark.parametrize("n_blocks,passes", [(6, 1), (6, 2), (2, 1), (9, 3)])
def test_each_block_is_emitted_once_in_order_after_L_windows(model, n_blocks, passes):
    s = make(model, passes=passes)
    run(model, s, n_blocks)
    windows = [c for c in s.calls if c.kind == "denoise"]
    assert len(windows) == (n_blocks + 3) * passes
    B, L = 2, 4
    levels = FlowSchedule().levels(StreamConfig(passes=passes))
    seen = {}
    for i, (start, end) in enumerate(plan_windows(n_blocks, L)):
        for p in range(passes):
            call = windows[i * passes + p]
            assert call.frames == (end - start) * B
            assert call.first_frame == 1 + start * B
            for j, blk in enumerate(range(start, end)):
                k = (i - blk) * passes + p          # level index of this block in this pass
                assert call.timesteps[j * B:(j + 1) * B] == pytest.approx([levels[k]] * B, abs=1e-3)
                seen.setdefault(blk, []).append(k)
    for blk, ks in seen.items():
        assert ks == list(range(L * passes)), f"block {blk} visited levels {ks}"
    updates = [c for c in s.calls if c.kind == "update"]
    assert [c.first_frame for c in updates] == [1 + b * B for b in range(n_blocks)]


def test_warm_up_returns_none_then_one_block_per_step(model):
    s = make(model)
    outs = [s.step(audio(model, s, b)) for b in range(8)]
    assert [o is None for o in outs] == [True] * 3 + [False] * 5
    assert all(o.shape == (1, 2, 4, 4, 4) for o in outs[3:])
    assert len(s.flush()) == 3


def test_same_seed_same_stream_different_seed_differs(model):
    a = torch.cat(run(model, make(model, seed=1), 5), 1)
    b = torch.cat(run(model, make(model, seed=1), 5), 1)
    c = torch.cat(run(model, make(model, seed=2), 5), 1)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_injected_noise_is_used(model):
    calls = []

    def noise_fn(kind, block, shape):
        calls.append((kind, block))
        return torch.zeros(shape)
    s = StreamingSampler(model, StreamConfig(block_frames=2), noise_fn=noise_fn)
    s.start(torch.randn(4, 4, 4))
    run(model, s, 2)
    assert calls[:2] == [("fresh", 0), ("renoise", 0)]
    assert sum(k == "fresh" for k, _ in calls) == 2
    assert sum(k == "renoise" for k, _ in calls) == 2 * 3


def cache_state(cache):
    return cache.filled, [t.clone() for t in (cache.anchor_k or []) + (cache.ring_k or []) + (cache.ring_v or [])]


@pytest.mark.parametrize("sampler_cls", [StreamingSampler, SelfForcingSampler])
def test_every_denoising_call_is_the_pure_window_step(model, sampler_cls):
    """What training reuses: window_step on the stream's conditioning gives the stream's x0 bit for bit,
    as often as it is called, and leaves the cache as it found it."""
    s = make(model, sampler_cls)
    checked = []

    def again(kind, d):
        if kind != "denoise":
            return
        before = cache_state(s.cache)
        x0s = [window_step(model, s.stream, s.schedule, s.conditioning, d["x"], d["t"], d["audio"], d["first_frame"])
               for _ in range(2)]
        after = cache_state(s.cache)
        assert before[0] == after[0] and all(torch.equal(a, b) for a, b in zip(before[1], after[1]))
        assert all(torch.equal(x0, s.schedule.x0_from_flow(d["x"], d["flow"], d["t"])) for x0 in x0s)
        checked.append(d["first_frame"])
    s.on_call = again
    run(model, s, 6)
    assert len(checked) == (9 if sampler_cls is StreamingSampler else 6 * 4) and checked[-1] > 1


def test_constant_cost_and_bounded_cache_over_5000_steps(model):
    s = make(model)
    s.record_calls = False
    a = audio(model, s)
    sizes, shapes = [], set()
    s.on_call = lambda kind, d: shapes.add((kind, d["x"].shape[1], sum(k.shape[1] for k in d["keys"])))
    for i in range(5000):
        s.step(a)
        if i == 10:
            sizes.append(s.cache.nbytes())
            shapes.clear()
    sizes.append(s.cache.nbytes())
    assert sizes[0] == sizes[1]
    assert shapes == {("denoise", 8, 4 * 8 * 4), ("update", 2, 4 * 2 * 4)}  # same tokens every step
    record = []
    s.record_calls = True
    s.step(a)
    record = [(c.kind, c.frames, c.memory_frames) for c in s.calls[-2:]]
    assert record == [("denoise", 8, 3), ("update", 2, 3)]   # anchor + 2 temporal frames, never more


def anchor_offset(call):
    """Rotary distance from the anchor to the newest frame of the call."""
    return call.frame_pos[-1] - call.memory_pos[0]


def test_anchor_rope_distance_is_the_same_at_step_10_and_10000(model):
    s = make(model)
    a = audio(model, s)
    for i in range(10):
        s.step(a)
    at10 = [c for c in s.calls if c.kind in ("denoise", "update")][-2:]
    s.record_calls = False
    for i in range(9990):
        s.step(a)
    s.record_calls = True
    s.calls.clear()
    s.step(a)
    at10000 = s.calls[-2:]
    assert [anchor_offset(c) for c in at10] == [anchor_offset(c) for c in at10000]
    assert max(max(c.frame_pos) for c in at10000) <= 1 + 2 + 8     # positions stay bounded
    assert at10000[0].first_frame > 1024 * 4                          # far past the authors' 255 blocks


def test_long_stream_equals_a_fresh_stream_with_the_same_cache(model):
    """At block 400 (past the authors' crash at 255) the output depends only on the cache contents."""
    s = make(model)
    a = audio(model, s)
    for i in range(400):
        s.step(a)
    twin = copy.deepcopy(s)
    twin.emitted_frames = 0               # as if the stream had just begun, same cache and window
    twin.generator = torch.Generator().manual_seed(5)
    s.generator = torch.Generator().manual_seed(5)
    out, out_twin = s.step(a), twin.step(a)
    assert torch.isfinite(out).all()
    assert torch.equal(out, out_twin)


def test_without_reindex_the_anchor_drifts_away(model):
    s = make(model, rope_reindex=False)
    a = audio(model, s)
    offsets = []
    for i in range(12):
        s.step(a)
        offsets.append(anchor_offset([c for c in s.calls if c.kind == "denoise"][-1]))
    assert offsets[-1] - offsets[5] == 6 * 2   # grows by one block per step


def test_ablation_switches_change_what_the_window_attends_to(model):
    full = make(model)
    run(model, full, 6)
    assert full.calls[-2].memory_frames == 3
    no_style = make(model, style_anchor=False)
    run(model, no_style, 6)
    assert no_style.calls[-2].memory_frames == 2
    no_temporal = make(model, temporal_frames=0)
    run(model, no_temporal, 6)
    assert no_temporal.calls[-1].memory_frames == 1
    assert not any(c.kind == "update" for c in no_temporal.calls)


def test_anchor_audio_zero_padding_switch_changes_the_anchor(model):
    seen = {}
    for zero in (True, False):
        s = make(model, anchor_audio_zero=zero)
        s.step(audio(model, s, 3) + 5.0)
        seen[zero] = s.cache.anchor_k[-1].clone()   # audio enters from block 2 on
    assert not torch.allclose(seen[True], seen[False])


def test_uncached_stream_recomputes_context_and_stays_close(model):
    s = make(model, kv_cache=False)
    blocks = run(model, s, 6)
    assert len(blocks) == 6
    kinds = [c.kind for c in s.calls]
    assert "update" not in kinds and kinds.count("context") == 5   # windows 4..8 follow an emission


def test_batch_items_do_not_mix(model):
    """The authors' audio projection mixes batch items; ours must not."""
    ref = torch.randn(2, 4, 4, 4)
    aud = torch.randn(2, 4, 2, model.cfg.audio_dim)
    outs = []
    for b in range(2):
        s = StreamingSampler(model, StreamConfig(block_frames=2), noise_fn=lambda k, i, shape: torch.ones(shape))
        s.start(ref[b])
        outs.append(torch.cat([x for x in [s.step(aud[b, i]) for i in range(4)] if x is not None] + s.flush(), 1))
    s = StreamingSampler(model, StreamConfig(block_frames=2), noise_fn=lambda k, i, shape: torch.ones(shape))
    s.start(ref)
    both = torch.cat([x for x in [s.step(aud[:, i]) for i in range(4)] if x is not None] + s.flush(), 1)
    assert torch.allclose(both[0], outs[0][0], atol=1e-5)
    assert torch.allclose(both[1], outs[1][0], atol=1e-5)


def test_self_forcing_baseline_emits_every_step_through_all_levels(model):
    s = make(model, SelfForcingSampler)
    outs = [s.step(audio(model, s, b)) for b in range(3)]
    assert all(o is not None and o.shape == (1, 2, 4, 4, 4) for o in outs)
    denoise = [c for c in s.calls if c.kind == "denoise"]
    assert len(denoise) == 3 * 4
    assert [c.timesteps[0] for c in denoise[:4]] == pytest.approx(LEVELS, abs=1e-3)
    assert all(c.frames == 2 for c in denoise)

"""The engine benchmark as a specification of its JSON: every field present, sane and self-consistent.

No timing thresholds: the numbers depend on the machine. What is checked is that the report is
complete, that percentiles and ratios agree with the raw numbers they are made of, and that the
FLOP count matches the calls the sampler really made.
"""
from __future__ import annotations

import json

import pytest

from engine.config import ModelConfig, StreamConfig
from engine.flops import call_flops, steady_calls
from engine.tools.bench import PAPER_SWEEP_MS, format_summary, load_notes, main, run_engine_bench, write_json


@pytest.fixture(scope="module")
def result():
    return run_engine_bench("micro", steps=60, sweep="small", threads=1, compare_rounds=4, thread_rounds=2)


def test_report_has_every_section_and_machine_facts(result):
    for key in ("schema", "created", "config", "machine", "stream", "sweep", "baselines", "threads", "flops",
                "total_s", "notes"):
        assert key in result, key
    m = result["machine"]
    assert m["cpu_model"] and m["torch_version"] and m["torch_threads"] == 1
    assert result["config"]["params"] > 0 and result["config"]["tokens_per_frame"] == 4
    assert result["total_s"] > 0


def test_stream_percentiles_rss_and_cache_are_sane(result):
    st = result["stream"]
    for key in ("early", "late", "control"):
        p = st[key]
        assert 0 < p["step_ms_p50"] <= p["step_ms_p95"], key
    for key in ("early", "late"):
        assert st[key]["rss_bytes"] > 10 * 2**20 and st[key]["cache_bytes"] > 0
    assert st["early"]["steps"] == [10, 30] and st["late"]["steps"] == [40, 60]
    assert st["emitted_frames"] == (60 - 3) * 2           # L-1 warm-up steps emit nothing, then B per step
    assert st["latent_fps"] > 0 and st["output_finite"]
    assert st["late_vs_control_step_ratio"] == pytest.approx(st["late"]["step_ms_p50"] / st["control"]["step_ms_p50"])
    assert st["rss_late_vs_early_ratio"] == pytest.approx(st["late"]["rss_bytes"] / st["early"]["rss_bytes"])
    assert st["step_time_within_10pct"] == (abs(st["late_vs_control_step_ratio"] - 1) <= 0.10)
    assert st["cache_bytes_constant"] is True


def test_sweep_covers_the_paper_grid_with_ratios_to_4_1(result):
    points = {(p["B"], p["N"]): p for p in result["sweep"]["points"]}
    assert set(points) == set(PAPER_SWEEP_MS)
    ref = points[(4, 1)]
    assert ref["ratio"] == pytest.approx(1.0) and ref["paper_ratio"] == pytest.approx(1.0)
    for (b, n), p in points.items():
        assert 0 < p["step_ms_p50"] <= p["step_ms_p95"]
        assert p["ms_per_frame"] == pytest.approx(p["step_ms_p50"] / b)
        assert p["ratio"] == pytest.approx(p["ms_per_frame"] / ref["ms_per_frame"])
        assert p["paper_ratio"] == pytest.approx(PAPER_SWEEP_MS[(b, n)] / 34.14)
        assert p["calls_per_step"] == n + 1                 # N denoise calls and one cache update


def test_baselines_are_ratios_to_the_cached_stream(result):
    variants = result["baselines"]["variants"]
    assert set(variants) == {"cached", "no_kv_cache", "self_forcing"}
    base = variants["cached"]["ms_per_frame"]
    for name, v in variants.items():
        assert v["calls_match_analytic"], name
        assert 0 < v["step_ms_p50"] <= v["step_ms_p95"]
        assert v["ratio_to_cached"] == pytest.approx(v["ms_per_frame"] / base)
    assert variants["cached"]["ratio_to_cached"] == pytest.approx(1.0)


def test_flop_count_matches_observed_calls_and_time(result):
    f = result["flops"]
    assert f["observed_calls_match_analytic"]
    assert f["observed_per_step_gflop"] == pytest.approx(f["per_step_gflop"])
    assert f["per_emitted_frame_gflop"] == pytest.approx(f["per_step_gflop"] / 2)
    assert f["gflops_achieved"] == pytest.approx(f["per_step_gflop"] / (result["stream"]["late"]["step_ms_p50"] / 1e3))
    assert sum(f["by_part_gflop_per_step"].values()) == pytest.approx(f["per_step_gflop"])


def test_call_flops_counts_a_layer_by_hand():
    cfg = ModelConfig(dim=8, num_heads=2, num_layers=1, ffn_dim=16, in_dim=9, out_dim=4, text_dim=0, text_len=0,
                      freq_dim=4, audio_dim=3, audio_pack=1, audio_hidden=2, audio_first_block=0)
    parts = call_flops(cfg, frames=2, memory_frames=1, tokens_per_frame=4)   # 8 query tokens, 12 keys
    assert parts["qkvo"] == 2 * 8 * 4 * 8 * 8
    assert parts["attention"] == 4 * 8 * 12 * 8
    assert parts["ffn"] == 2 * 2 * 8 * 8 * 16
    assert parts["patch_embed"] == 2 * 8 * 9 * 4 * 8
    assert parts["head"] == 2 * 8 * 8 * 4 * 4
    assert parts["cross_attention"] == 0


def test_steady_calls_describe_each_sampler():
    s = StreamConfig(block_frames=2, passes=2, temporal_frames=2)
    assert steady_calls(s, "cached") == [("denoise", 8, 3), ("denoise", 8, 3), ("update", 2, 3)]
    assert steady_calls(s, "no_kv_cache") == [("prefill", 1, 0), ("context", 2, 1), ("denoise", 8, 3), ("denoise", 8, 3)]
    assert steady_calls(s, "self_forcing") == [("denoise", 2, 3)] * 8 + [("update", 2, 3)]


def test_json_is_written_whole_and_summary_renders(result, tmp_path):
    path = write_json(result, tmp_path / "out" / "bench.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(result))
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]
    text = format_summary(result)
    assert "| 4,1 |" in text and "no_kv_cache" in text


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="config must be one of"):
        run_engine_bench("huge", steps=60)
    with pytest.raises(ValueError, match="steps must be >= 60"):
        run_engine_bench("micro", steps=20, sweep=False, threads=1)
    with pytest.raises(ValueError, match="sweep must be"):
        run_engine_bench("micro", steps=60, sweep="medium")


def test_cli_writes_json(tmp_path):
    out = tmp_path / "b.json"
    assert main(["--config", "micro", "--steps", "60", "--sweep", "off", "--threads", "1", "--compare-rounds", "2",
                 "--thread-rounds", "0", "--out", str(out), "--md", str(tmp_path / "b.md")]) == 0
    data = json.loads(out.read_text())
    assert data["sweep"] is None and data["threads"] is None and data["stream"]["steps"] == 60
    assert "| variant |" in (tmp_path / "b.md").read_text()


def test_notes_name_a_busy_machine():
    busy = load_notes({"loadavg_start": [3.5, 3.0, 2.0], "loadavg_end": [4.0, 3.0, 2.0], "cpus_usable": 2})
    assert busy and "4.0 on 2" in busy[0]
    assert load_notes({"loadavg_start": [0.1, 0, 0], "loadavg_end": [0.2, 0, 0], "cpus_usable": 8}) == []

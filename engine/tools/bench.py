"""Engine benchmark: step cost, drift over a long stream, the paper's cost sweep, baselines, FLOPs.

Why it is built this way: the machines it runs on are shared and noisy, so absolute milliseconds
mean little on their own. Everything that is compared is measured side by side in one run, with
the compared streams stepped in turn (interleaved, rotating order) and summarised by medians; the
long-stream check compares the stream's last steps with a fresh control stream stepped alongside
them. FLOPs are counted analytically from the config and checked against the calls the sampler
really made, so "GFLOP/s achieved" is honest about what was computed.

    python -m engine.tools.bench --config toon --steps 2000 --out bench.json
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from engine.config import ModelConfig, StreamConfig, replace, to_dict
from engine.files import atomic_write_text
from engine.flops import call_flops, steady_calls, step_flops
from engine.model import CausalDiT
from engine.sampler import SelfForcingSampler, StreamingSampler

log = logging.getLogger(__name__)

SCHEMA = "avatarcam.bench.engine/1"

# The paper's cost sweep at L = 4 (ms per latent frame on its GPU), keyed by (B, N).
PAPER_SWEEP_MS: dict[tuple[int, int], float] = {
    (1, 4): 28.19, (2, 1): 19.5, (2, 2): 33.19, (4, 1): 34.14,
    (4, 2): 69.45, (8, 1): 59.67, (4, 4): 166.42,
}
SWEEP_REFERENCE = (4, 1)
SWEEP_MODES = {"full": (15, 2), "small": (3, 1)}   # rounds measured per point, extra warm-up steps


NOTES = (
    "All comparisons are medians of steps measured in one run; compared streams are stepped in turn "
    "(rotating order) so load from other processes hits them alike.",
    "step_time_within_10pct compares the stream's last 20 steps with a fresh control stream's steps 10-30 run "
    "alongside them; the same-stream early/late ratio is also given but spans minutes of changing machine load.",
    "Ratios, not absolute ms, are the result: absolute ms depend on what else runs on the machine.",
)


def load_notes(machine: dict[str, Any]) -> list[str]:
    """Say so when other processes competed for the cores (absolute numbers are then pessimistic)."""
    loads = [x for x in (machine.get("loadavg_start"), machine.get("loadavg_end")) if x]
    cores = machine.get("cpus_usable") or 1
    if loads and max(x[0] for x in loads) > 0.5 * cores:
        return [f"The machine was busy: 1-minute load average {max(x[0] for x in loads):.1f} on {cores} usable "
                f"cores while this ran (other processes shared the cores)."]
    return []


@dataclass
class BenchSetup:
    """A model size plus the stream and latent shape it is benchmarked with."""

    name: str
    model: ModelConfig
    latent: tuple[int, int]                     # latent h, w
    stream: StreamConfig = field(default_factory=StreamConfig)
    fps: float = 25.0                           # latent frames per second needed for real time

    @property
    def tokens_per_frame(self) -> int:
        _, ph, pw = self.model.patch_size
        return (self.latent[0] // ph) * (self.latent[1] // pw)


def toon_model() -> ModelConfig:
    """The size we ship for CPU real time (the shipped card's model: 64 tokens per frame, log-mel, no text)."""
    from engine.card import MODELS_DIR, load_card
    return load_card(MODELS_DIR / "toon").model


def _stream(block_frames: int) -> StreamConfig:
    return StreamConfig(block_frames=block_frames, timesteps=(1000, 800, 400, 200), passes=1, temporal_frames=2)


SETUPS: dict[str, Callable[[], BenchSetup]] = {
    "toon": lambda: BenchSetup("toon", toon_model(), (16, 16), _stream(2)),
    "tiny": lambda: BenchSetup("tiny", ModelConfig.tiny(), (8, 8), _stream(2)),
    "micro": lambda: BenchSetup("micro", ModelConfig.micro(), (4, 4), _stream(2)),
}


# -- measurement helpers ------------------------------------------------------------------------------------
def rss_bytes() -> tuple[int, str]:
    """Resident set size of this process and where it was read from."""
    try:
        import psutil
        return int(psutil.Process().memory_info().rss), "psutil"
    except ImportError:
        pass
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024, "/proc/self/status"
    raise RuntimeError("cannot read RSS: no psutil and no VmRSS in /proc/self/status")


def summary(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "min": float(a.min()), "n": int(a.size)}


class Runner:
    """One sampler on a fixed audio block, stepped and timed."""

    def __init__(self, model: CausalDiT, setup: BenchSetup, stream: StreamConfig, seed: int,
                 cls: type = StreamingSampler):
        gen = torch.Generator().manual_seed(seed)
        cfg = model.cfg
        self.sampler = cls(model, stream, generator=torch.Generator().manual_seed(seed + 1))
        ref = torch.randn(cfg.out_dim, *setup.latent, generator=gen)
        text = torch.randn(1, cfg.text_len, cfg.text_dim, generator=gen) if cfg.has_text else None
        self.sampler.start(ref, text)
        self.audio = torch.randn(stream.block_frames * cfg.audio_pack, cfg.audio_dim, generator=gen)
        self.block_frames = stream.block_frames
        self.steps = 0
        self.emitted = 0
        self.last: torch.Tensor | None = None

    def step(self) -> float:
        """One step; returns its wall time in ms."""
        t0 = time.perf_counter()
        out = self.sampler.step(self.audio)
        ms = (time.perf_counter() - t0) * 1e3
        self.steps += 1
        if out is not None:
            self.emitted += out.shape[1]
            self.last = out
        return ms

    def steady_step(self) -> float:
        """A step that must emit a full block (warm-up is over): the unit all ratios are made of."""
        before = self.emitted
        ms = self.step()
        if self.emitted - before != self.block_frames:
            raise RuntimeError(f"step {self.steps} emitted {self.emitted - before} frames, expected "
                               f"{self.block_frames}: the warm-up was too short")
        return ms

    def warm(self, extra: int) -> None:
        for _ in range(self.sampler.stream.window_blocks + extra):
            self.step()

    def observed_calls(self) -> list[tuple[str, int, int]]:
        """Run one steady step with call recording on: what the sampler really calls."""
        self.sampler.calls.clear()
        self.sampler.record_calls = True
        try:
            self.steady_step()
        finally:
            self.sampler.record_calls = False
        calls = [(c.kind, c.frames, c.memory_frames) for c in self.sampler.calls]
        self.sampler.calls.clear()
        return calls


def interleave(runners: dict[str, Runner], rounds: int) -> dict[str, list[float]]:
    """Step every runner once per round, rotating the order, so load changes hit them all alike."""
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(runners[name].steady_step())
    return times


def _build_model(cfg: ModelConfig, seed: int) -> CausalDiT:
    """Random float32 weights, without disturbing the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CausalDiT(cfg).float().eval()


def _within(a: float, b: float, tol: float = 0.10) -> bool:
    return abs(a / b - 1.0) <= tol


# -- the four parts -------------------------------------------------------------------------------------------
def bench_stream(model: CausalDiT, setup: BenchSetup, steps: int, seed: int) -> dict[str, Any]:
    """A long stream: cost, RSS and cache at steps 10-30 and at the last 20, plus a side-by-side control."""
    if steps < 60:
        raise ValueError(f"steps must be >= 60 (early window 10-30, control stream from steps-30); got {steps}")
    early, late = (10, 30), (steps - 20, steps)
    control_from = steps - 30
    main = Runner(model, setup, setup.stream, seed)
    control: Runner | None = None
    ms_all: list[float] = []
    ctrl_ms: list[float] = []
    points: dict[str, dict[str, Any]] = {}
    emitted_at: dict[str, int] = {}
    for i in range(steps):
        if i == control_from:
            rss, _ = rss_bytes()
            points["late"] = {"rss_bytes": rss}
            control = Runner(model, setup, setup.stream, seed + 7)
        run_control_first = control is not None and i % 2 == 1
        if run_control_first:
            ctrl_ms.append(control.step())
        ms_all.append(main.step())
        if control is not None and not run_control_first:
            ctrl_ms.append(control.step())
        if i + 1 == early[1]:
            rss, _ = rss_bytes()
            points["early"] = {"rss_bytes": rss, "cache_bytes": main.sampler.cache.nbytes()}
        if i + 1 == setup.stream.window_blocks:
            emitted_at["first"] = main.emitted
    points["late"]["cache_bytes"] = main.sampler.cache.nbytes()
    rss_end, rss_source = rss_bytes()
    emitted = main.emitted
    calls = main.observed_calls()

    e, l_ = summary(ms_all[early[0]:early[1]]), summary(ms_all[late[0]:late[1]])
    c = summary(ctrl_ms[early[0]:early[1]])
    frames = emitted - emitted_at["first"]
    seconds = sum(ms_all[setup.stream.window_blocks:]) / 1e3     # the main stream's own steps only
    seg = max(1, steps // 10)
    segments = [{"steps": [a, min(a + seg, steps)], "step_ms_p50": summary(ms_all[a:a + seg])["p50"]}
                for a in range(0, steps, seg)]
    out = {
        "steps": steps,
        "early": {"steps": list(early), "step_ms_p50": e["p50"], "step_ms_p95": e["p95"], **points["early"]},
        "late": {"steps": list(late), "step_ms_p50": l_["p50"], "step_ms_p95": l_["p95"], **points["late"],
                 "rss_measured_at_step": control_from},
        "control": {"steps": list(early), "started_at_step": control_from,
                    "step_ms_p50": c["p50"], "step_ms_p95": c["p95"]},
        "late_vs_control_step_ratio": l_["p50"] / c["p50"],
        "late_vs_early_step_ratio": l_["p50"] / e["p50"],
        "rss_late_vs_early_ratio": points["late"]["rss_bytes"] / points["early"]["rss_bytes"],
        "rss_end_bytes": rss_end,
        "rss_source": rss_source,
        "emitted_frames": emitted,
        "latent_fps": frames / seconds,
        "latent_fps_from_late_p50": setup.stream.block_frames * 1e3 / l_["p50"],
        "real_time_fps": setup.fps,
        "steady_step_s": seconds,
        "segments": segments,
        "calls_per_step": [list(x) for x in calls],
        "output_finite": bool(main.last is not None and torch.isfinite(main.last).all()),
    }
    out["real_time_factor"] = out["latent_fps"] / setup.fps
    out["step_time_within_10pct"] = _within(l_["p50"], c["p50"])
    out["step_time_within_10pct_of_same_stream_early"] = _within(l_["p50"], e["p50"])
    out["rss_within_10pct"] = _within(points["late"]["rss_bytes"], points["early"]["rss_bytes"])
    out["cache_bytes_constant"] = points["late"]["cache_bytes"] == points["early"]["cache_bytes"]
    return out


def bench_sweep(model: CausalDiT, setup: BenchSetup, mode: str, seed: int) -> dict[str, Any]:
    """The paper's (B, N) grid at L = 4, all points stepped in turn; ms per latent frame vs (4, 1)."""
    rounds, extra = SWEEP_MODES[mode]
    runners = {}
    for i, (b, n) in enumerate(PAPER_SWEEP_MS):
        runners[f"{b},{n}"] = Runner(model, setup, replace(setup.stream, block_frames=b, passes=n), seed + 100 + i)
        runners[f"{b},{n}"].warm(extra)
    calls = {name: r.observed_calls() for name, r in runners.items()}
    times = interleave(runners, rounds)
    s = setup.tokens_per_frame
    ref_name = f"{SWEEP_REFERENCE[0]},{SWEEP_REFERENCE[1]}"
    paper_ref = PAPER_SWEEP_MS[SWEEP_REFERENCE]
    points = []
    for (b, n), paper_ms in PAPER_SWEEP_MS.items():
        name = f"{b},{n}"
        st = summary(times[name])
        flops = step_flops(model.cfg, calls[name], s)
        points.append({"B": b, "N": n, "step_ms_p50": st["p50"], "step_ms_p95": st["p95"],
                       "ms_per_frame": st["p50"] / b, "gflop_per_frame": flops / b / 1e9,
                       "gflops_achieved": flops / (st["p50"] * 1e-3) / 1e9,
                       "calls_per_step": len(calls[name]),
                       "paper_ms_per_frame": paper_ms, "paper_ratio": paper_ms / paper_ref})
    ref = next(p for p in points if (p["B"], p["N"]) == SWEEP_REFERENCE)
    for p in points:
        p["ratio"] = p["ms_per_frame"] / ref["ms_per_frame"]
        p["flop_ratio"] = p["gflop_per_frame"] / ref["gflop_per_frame"]
    return {"L": setup.stream.window_blocks, "reference": list(SWEEP_REFERENCE), "mode": mode,
            "rounds": rounds, "warmup_steps": setup.stream.window_blocks + extra, "ref_name": ref_name,
            "points": points}


def bench_baselines(model: CausalDiT, setup: BenchSetup, rounds: int, seed: int) -> dict[str, Any]:
    """Cached AvatarForcing vs the same stream without KV cache vs self-forcing, stepped in turn."""
    runners = {
        "cached": Runner(model, setup, setup.stream, seed + 200),
        "no_kv_cache": Runner(model, setup, replace(setup.stream, kv_cache=False), seed + 201),
        "self_forcing": Runner(model, setup, setup.stream, seed + 202, cls=SelfForcingSampler),
    }
    for r in runners.values():
        r.warm(1)
    calls = {name: r.observed_calls() for name, r in runners.items()}
    times = interleave(runners, rounds)
    b, s = setup.stream.block_frames, setup.tokens_per_frame
    out: dict[str, Any] = {"rounds": rounds, "variants": {}}
    for name in runners:
        st = summary(times[name])
        flops = step_flops(model.cfg, calls[name], s)
        out["variants"][name] = {
            "step_ms_p50": st["p50"], "step_ms_p95": st["p95"], "ms_per_frame": st["p50"] / b,
            "gflop_per_frame": flops / b / 1e9, "calls_per_step": [list(c) for c in calls[name]],
            "calls_match_analytic": calls[name] == steady_calls(setup.stream, name),
        }
    base = out["variants"]["cached"]
    for v in out["variants"].values():
        v["ratio_to_cached"] = v["ms_per_frame"] / base["ms_per_frame"]
        v["flop_ratio_to_cached"] = v["gflop_per_frame"] / base["gflop_per_frame"]
    return out


def bench_threads(model: CausalDiT, setup: BenchSetup, counts: list[int], rounds: int, seed: int) -> dict[str, Any]:
    """One stream, each step on a different thread count in turn: how many threads pay on this machine now."""
    runner = Runner(model, setup, setup.stream, seed + 300)
    runner.warm(1)
    prev = torch.get_num_threads()
    times: dict[int, list[float]] = {n: [] for n in counts}
    try:
        for r in range(rounds):
            for n in (counts if r % 2 == 0 else counts[::-1]):
                torch.set_num_threads(n)
                times[n].append(runner.steady_step())
    finally:
        torch.set_num_threads(prev)
    per = {str(n): {"step_ms_p50": summary(t)["p50"], "step_ms_p95": summary(t)["p95"]} for n, t in times.items()}
    one = per[str(counts[0])]["step_ms_p50"]
    for v in per.values():
        v["ratio_to_%d_thread" % counts[0]] = v["step_ms_p50"] / one
    return {"rounds": rounds, "threads": per,
            "fastest": min(per, key=lambda k: per[k]["step_ms_p50"])}


def flops_report(setup: BenchSetup, observed: list[tuple[str, int, int]], step_ms_p50: float) -> dict[str, Any]:
    """Analytic FLOPs per step and per emitted frame of the cached stream, by part and by call."""
    cfg, s, b = setup.model, setup.tokens_per_frame, setup.stream.block_frames
    calls = steady_calls(setup.stream, "cached")
    by_part: dict[str, int] = {}
    by_call = []
    for kind, f, m in calls:
        parts = call_flops(cfg, f, m, s)
        by_call.append({"kind": kind, "frames": f, "memory_frames": m, "tokens": f * s, "keys": (f + m) * s,
                        "gflop": sum(parts.values()) / 1e9})
        for k, v in parts.items():
            by_part[k] = by_part.get(k, 0) + v
    total = sum(by_part.values())
    return {
        "per_step_gflop": total / 1e9,
        "per_emitted_frame_gflop": total / b / 1e9,
        "by_part_gflop_per_step": {k: v / 1e9 for k, v in by_part.items()},
        "calls": by_call,
        "observed_calls_match_analytic": [tuple(c) for c in observed] == calls,
        "observed_per_step_gflop": step_flops(cfg, [tuple(c) for c in observed], s) / 1e9,
        "gflops_achieved": total / (step_ms_p50 * 1e-3) / 1e9,
        "counted": "matmuls only (2 FLOPs per multiply-add): patch embed, time embed, audio projections, "
                   "q/k/v/o, attention QK^T and AV over window + memory tokens, FFN, head; batch 1",
    }


def machine_info() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_model": model, "cpu_count": os.cpu_count(), "cpus_usable": affinity,
            "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
            "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


# -- entry points ---------------------------------------------------------------------------------------------
def _sweep_mode(sweep: bool | str) -> str | None:
    if sweep is True:
        return "full"
    if sweep is False or sweep is None:
        return None
    if sweep in SWEEP_MODES:
        return str(sweep)
    raise ValueError(f"sweep must be True, False, 'full' or 'small'; got {sweep!r}")


def run_engine_bench(config: str = "toon", steps: int = 2000, sweep: bool | str = True,
                     threads: int | None = None, compare_rounds: int = 30, thread_rounds: int = 8,
                     seed: int = 0, extra_notes: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run every measurement in one process and return the JSON-ready result.

    threads: torch intra-op threads (default: all usable cores); restored afterwards.
    sweep: True/"full" (15 rounds per point), "small" (3 rounds, for tests) or False (skip).
    thread_rounds: steps per thread count in the thread probe (1 vs all cores vs `threads`); 0 skips it.
    extra_notes: free text added to the report's notes (what the numbers cannot show).
    """
    if config not in SETUPS:
        raise ValueError(f"config must be one of {sorted(SETUPS)}; got {config!r}")
    mode = _sweep_mode(sweep)
    if steps < 60:
        raise ValueError(f"steps must be >= 60 (early window 10-30, control stream from steps-30); got {steps}")
    if compare_rounds < 1:
        raise ValueError(f"compare_rounds must be >= 1; got {compare_rounds}")
    setup = SETUPS[config]()
    prev_threads = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_threads = max(1, int(threads or cores))
    probe_counts = sorted({1, cores, n_threads})
    torch.set_num_threads(n_threads)
    t0 = time.perf_counter()
    try:
        model = _build_model(setup.model, seed)
        machine = machine_info()
        log.info("engine bench: config %s, %d steps, %d threads", config, steps, torch.get_num_threads())
        stream = bench_stream(model, setup, steps, seed)
        log.info("stream done: p50 %.1f ms early, %.1f ms late", stream["early"]["step_ms_p50"],
                 stream["late"]["step_ms_p50"])
        swept = bench_sweep(model, setup, mode, seed) if mode else None
        log.info("sweep %s", "done" if swept else "skipped")
        baselines = bench_baselines(model, setup, compare_rounds, seed)
        log.info("baselines done")
        probe = (bench_threads(model, setup, probe_counts, thread_rounds, seed)
                 if thread_rounds > 0 and len(probe_counts) > 1 else None)
    finally:
        torch.set_num_threads(prev_threads)
    machine["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    notes = list(NOTES) + load_notes(machine) + list(extra_notes)
    flops = flops_report(setup, [tuple(c) for c in stream["calls_per_step"]], stream["late"]["step_ms_p50"])
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": {"name": setup.name, "model": to_dict(setup.model), "stream": to_dict(setup.stream),
                   "latent": list(setup.latent), "tokens_per_frame": setup.tokens_per_frame,
                   "params": sum(p.numel() for p in model.parameters()), "dtype": "float32",
                   "weights": "random", "batch": 1, "real_time_fps": setup.fps},
        "machine": machine,
        "stream": stream,
        "sweep": swept,
        "baselines": baselines,
        "threads": probe,
        "flops": flops,
        "total_s": time.perf_counter() - t0,
        "notes": notes,
    }


def write_json(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """A report is for everyone to read: 0644, not mkstemp's 0600."""
    return atomic_write_text(path, json.dumps(result, indent=2) + "\n", mode=0o644)


def format_summary(result: dict[str, Any]) -> str:
    """Markdown tables of the headline numbers (for the CLI and docs)."""
    st, m = result["stream"], result["machine"]
    lines = [f"config **{result['config']['name']}** ({result['config']['params'] / 1e6:.2f} M params, "
             f"{result['config']['tokens_per_frame']} tokens/frame, B={result['config']['stream']['block_frames']}), "
             f"{m['torch_threads']} threads, torch {m['torch_version']}, {m['cpu_model']}", "",
             "| stream | step ms p50 | p95 | RSS MiB | cache KiB |", "|---|---|---|---|---|"]
    for key in ("early", "late"):
        p = st[key]
        lines.append(f"| {key} steps {p['steps'][0]}-{p['steps'][1]} | {p['step_ms_p50']:.1f} | "
                     f"{p['step_ms_p95']:.1f} | {p['rss_bytes'] / 2**20:.1f} | {p['cache_bytes'] / 1024:.0f} |")
    c = st["control"]
    lines.append(f"| fresh control (beside late) | {c['step_ms_p50']:.1f} | {c['step_ms_p95']:.1f} | | |")
    lines += ["", f"latent fps {st['latent_fps']:.1f} (real time needs {st['real_time_fps']:g}); "
              f"late/control step {st['late_vs_control_step_ratio']:.3f}, late/early RSS "
              f"{st['rss_late_vs_early_ratio']:.3f}, cache constant: {st['cache_bytes_constant']}"]
    if result.get("sweep"):
        lines += ["", "| B,N | ms/frame | ratio to 4,1 | FLOP ratio | paper ms/frame | paper ratio |",
                  "|---|---|---|---|---|---|"]
        for p in result["sweep"]["points"]:
            lines.append(f"| {p['B']},{p['N']} | {p['ms_per_frame']:.1f} | {p['ratio']:.2f} | {p['flop_ratio']:.2f} | "
                         f"{p['paper_ms_per_frame']:.2f} | {p['paper_ratio']:.2f} |")
    lines += ["", "| variant | ms/frame | ratio to cached | FLOP ratio |", "|---|---|---|---|"]
    for name, v in result["baselines"]["variants"].items():
        lines.append(f"| {name} | {v['ms_per_frame']:.1f} | {v['ratio_to_cached']:.2f} | "
                     f"{v['flop_ratio_to_cached']:.2f} |")
    if result.get("threads"):
        lines += ["", "| torch threads | step ms p50 | p95 |", "|---|---|---|"]
        for n, v in result["threads"]["threads"].items():
            lines.append(f"| {n} | {v['step_ms_p50']:.1f} | {v['step_ms_p95']:.1f} |")
    f = result["flops"]
    lines += ["", f"{f['per_emitted_frame_gflop']:.3f} GFLOP per emitted frame, {f['per_step_gflop']:.3f} per step, "
              f"{f['gflops_achieved']:.1f} GFLOP/s achieved (late p50)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(SETUPS), default="toon")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all usable cores)")
    parser.add_argument("--sweep", choices=["full", "small", "off"], default="full")
    parser.add_argument("--compare-rounds", type=int, default=30)
    parser.add_argument("--thread-rounds", type=int, default=8, help="thread probe steps per count (0 = off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", action="append", default=[], help="free-text note for the report (repeatable)")
    parser.add_argument("--out", default="bench_engine.json")
    parser.add_argument("--md", default=None, help="also write the summary tables to this markdown file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = run_engine_bench(args.config, args.steps, False if args.sweep == "off" else args.sweep,
                              threads=args.threads, compare_rounds=args.compare_rounds,
                              thread_rounds=args.thread_rounds, seed=args.seed, extra_notes=tuple(args.note))
    write_json(result, args.out)
    text = format_summary(result)
    if args.md:
        atomic_write_text(args.md, text + "\n", mode=0o644)
    log.info("wrote %s\n%s", args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

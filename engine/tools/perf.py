"""One table of every CPU variant x instruction-set limit, measured side by side on one core.

Why worker processes: the kernel libraries read their instruction-set limit (ATEN_CPU_CAPABILITY,
ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS) once, at start, so "as shipped" and "held to AVX2"
cannot share a process. One worker per limit builds every variant (compiling in parallel on the
free cores), then all are pinned to the same core and stepped in turn, one block at a time, in a
rotating order, by this coordinator: load from other programs hits every row alike.

A row: ms per block (features + model step + decode, medians), real-time factor (audio per block /
ms per block), the frames' difference from float32 eager of the same worker, and the physical
floor: FLOPs per block (model, counted from the config; decoder, counted by PyTorch's FLOP
counter) / the core's measured matrix-product peak in that dtype, and the fraction achieved.

The avatar is a library cartoon (cartoon identity 0), drawn by its rig as the Default avatar is:
decoding is the rig's control reader plus drawing at the card's size (the drawing is not matrix
products, so the floor counts only the reader). `--picture` measures a picture avatar instead
(the same portrait without its rig: the learned reference decoder).

    python -m engine.tools.perf --model toon --out perf.json --md perf.md      (avatarcam bench backends)
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import SAMPLE_RATE

LIMITS = {"shipped": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                                  "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}
VARIANTS = ("eager/float32", "eager/bfloat16", "compile/float32", "compile/bfloat16", "int8/float32")


# -- worker ------------------------------------------------------------------------------------------
def matmul_peak(dtype, n: int = 1024, repeats: int = 7) -> float:
    """Best GFLOP/s of an n x n x n matrix product on this thread."""
    import torch
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def _avatar(size: int, rig: bool):
    """The benchmark's avatar: its portrait at `size`, and its identity when it is drawn by its rig."""
    from engine.toon import random_identity, render_portrait
    identity = random_identity(0)
    return render_portrait(identity, size), identity if rig else None


VOICE = Path(__file__).resolve().parents[2] / "avatarcam" / "data" / "demo_voice.wav"


def _voice(seconds: float, path: Path = VOICE) -> np.ndarray:
    """A 16 kHz mono 16-bit wav (the bundled demo voice), looped to `seconds`."""
    import wave
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getframerate(), w.getsampwidth()) != (1, SAMPLE_RATE, 2):
            raise ValueError(f"{path}: need 16 kHz mono 16-bit PCM")
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    return np.tile(pcm, int(np.ceil(seconds * SAMPLE_RATE / len(pcm))))[: int(seconds * SAMPLE_RATE)]


def worker(model: str, variants: list[str], rig: bool = True) -> None:
    """Build, check and then time variants on request (JSON lines on stdin/stdout)."""
    import torch
    torch.set_num_threads(1)
    from engine.accel import (REFERENCE, BlockClock, Variant, counted_gflop, open_variant_stream, parity, step_gflop,
                              warm_stream)
    from engine.card import resolve_card
    out = sys.stdout
    sys.stdout = sys.stderr                      # library prints must not break the protocol
    card = resolve_card(model)
    image, identity = _avatar(max(card.width, card.height), rig)
    wanted = [Variant.parse(v) for v in variants]
    streams, setup_s = {}, {}
    for v in [REFERENCE, *wanted]:
        t0 = time.perf_counter()
        if v.name not in streams:
            streams[v.name] = open_variant_stream(card, v)
            warm_stream(streams[v.name], image, identity=identity)   # compiles compile/* here
        setup_s[v.name] = round(time.perf_counter() - t0, 1)
    diffs = parity(card, wanted, image, _voice(1.0), streams=streams, identity=identity)
    voice = _voice(6.0)
    clocks = {}
    for v in wanted:
        clocks[v.name] = BlockClock(streams[v.name], image, voice, identity=identity)
        clocks[v.name].warm(clocks[v.name].stream.sampler.latency_blocks + 3)
    ref = clocks[REFERENCE.name].stream
    model_gflop = step_gflop(ref)
    latents = torch.randn(ref.frames_per_block, *ref.sampler.ref.shape[-3:])
    decode_gflop = counted_gflop(lambda: ref.decoder.decode(latents))
    info = {"capability": torch.backends.cpu.get_cpu_capability(), "parity": diffs, "setup_s": setup_s,
            "decoder": "rig" if getattr(ref.decoder, "rigged", False) else "learned",
            "model_gflop": model_gflop, "decode_gflop": decode_gflop, "block_ms": ref.block_seconds * 1000}
    print(json.dumps({"ready": info}), file=out, flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("op") == "pin":
            os.sched_setaffinity(0, {int(cmd["core"])})
            peaks = {d: matmul_peak(getattr(torch, d)) for d in ("float32", "bfloat16")}
            print(json.dumps({"peaks": peaks}), file=out, flush=True)
        elif cmd.get("op") == "time":
            clock = clocks[cmd["variant"]]
            before = (len(clock.stream.step_ms), len(clock.stream.decode_ms))
            ms = [clock.push()[0] for _ in range(int(cmd.get("blocks", 1)))]
            step = clock.stream.step_ms[before[0]:]
            dec = clock.stream.decode_ms[before[1]:]
            print(json.dumps({"ms": ms, "step_ms": step, "decode_ms": dec}), file=out, flush=True)
        elif cmd.get("op") == "quit":
            break


# -- coordinator ---------------------------------------------------------------------------------------
class Worker:
    def __init__(self, limit: str, model: str, variants: list[str], rig: bool = True):
        env = dict(os.environ, **LIMITS[limit])
        for key in LIMITS["avx2"]:
            if key not in LIMITS[limit]:
                env.pop(key, None)
        self.limit = limit
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.tools.perf", "--worker", "--model", model,
                                      "--variants", ",".join(variants), *([] if rig else ["--picture"])],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.limit} worker ended early (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.ask(op="quit") if self.proc.poll() is None else None
        except (BrokenPipeError, RuntimeError, ValueError):
            pass
        self.proc.wait(timeout=30)


def run_perf(model: str = "toon", core: int = 0, rounds: int = 40, variants: tuple[str, ...] = VARIANTS,
             limits: tuple[str, ...] = ("shipped", "avx2"), rig: bool = True) -> dict[str, Any]:
    from engine.accel import cpu_model
    load_start = os.getloadavg()
    workers = {lim: Worker(lim, model, list(variants), rig) for lim in limits}
    try:
        ready = {lim: w.read()["ready"] for lim, w in workers.items()}
        peaks = {lim: w.ask(op="pin", core=core)["peaks"] for lim, w in workers.items()}
        jobs = [(lim, v) for lim in limits for v in variants]
        times: dict[tuple[str, str], dict[str, list[float]]] = {j: {"ms": [], "step_ms": [], "decode_ms": []}
                                                                 for j in jobs}
        for r in range(rounds):
            k = r % len(jobs)
            for lim, v in jobs[k:] + jobs[:k]:
                got = workers[lim].ask(op="time", variant=v, blocks=1)
                for key in times[(lim, v)]:
                    times[(lim, v)][key] += got[key]
    finally:
        for w in workers.values():
            w.close()
    rows = []
    for lim, v in jobs:
        info, t = ready[lim], times[(lim, v)]
        ms = float(np.median(t["ms"]))
        dtype = v.split("/")[1]
        gflop = info["model_gflop"] + info["decode_gflop"]
        floor = gflop / peaks[lim][dtype] * 1000
        diff = info["parity"][v]
        rows.append({"limit": lim, "capability": info["capability"], "variant": v, "ms_per_block": ms,
                     "ms_p95": float(np.percentile(t["ms"], 95)), "step_ms": float(np.median(t["step_ms"])),
                     "decode_ms_per_block": float(np.median(t["decode_ms"])) if t["decode_ms"] else 0.0,
                     "realtime_factor": info["block_ms"] / ms, "max_pixel_diff": diff["max"],
                     "worst_frame_mean_diff": diff["mean"], "worst_frame_p99_diff": diff["p99"],
                     "parity_ok": diff["ok"], "gflop_per_block": gflop, "peak_gflops": peaks[lim][dtype],
                     "floor_ms": floor, "fraction_of_floor": floor / ms, "setup_s": info["setup_s"][v],
                     "samples": len(t["ms"])})
    ref = {lim: next(r["ms_per_block"] for r in rows if r["limit"] == lim and r["variant"] == "eager/float32")
           for lim in limits}
    for row in rows:
        row["speedup_vs_float32_eager"] = ref[row["limit"]] / row["ms_per_block"]
    return {"schema": "avatarcam.bench.backends/1", "model": model, "core": core, "rounds": rounds,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_model(),
            "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg()),
            "block_ms": ready[limits[0]]["block_ms"], "model_gflop": ready[limits[0]]["model_gflop"],
            "decoder": ready[limits[0]]["decoder"],
            "decode_gflop": ready[limits[0]]["decode_gflop"], "peaks": peaks, "rows": rows}


DECODERS = {"rig": "the cartoon's rig (reader + drawing)", "learned": "the learned reference decoder"}


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{result['cpu']}, pinned to core {result['core']}, 1 torch thread; {result['rounds']} blocks per row, "
             f"rows stepped in turn; model {result['model']} ({result['model_gflop']:.2f} GFLOP per step + "
             f"{result['decode_gflop']:.2f} GFLOP decode per {result['block_ms']:.0f} ms block, decoded by "
             f"{DECODERS.get(result.get('decoder'), 'the learned decoder')}); 1-min load "
             f"{result['loadavg_start'][0]:.1f} at start, {result['loadavg_end'][0]:.1f} at end", "",
             "| ISA | variant | ms/block p50 | step ms | decode ms | real-time factor | vs fp32 eager | "
             "max px diff | worst-frame mean / p99 diff | floor ms | of floor |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['limit']} ({r['capability']}) | {r['variant']} | {r['ms_per_block']:.1f} | "
                     f"{r['step_ms']:.1f} | {r['decode_ms_per_block']:.1f} | {r['realtime_factor']:.2f} | "
                     f"{r['speedup_vs_float32_eager']:.2f}x | {r['max_pixel_diff']} | "
                     f"{r['worst_frame_mean_diff']:.2f} / {r['worst_frame_p99_diff']:.0f}"
                     f"{'' if r['parity_ok'] else ' (fails)'} | {r['floor_ms']:.1f} | "
                     f"{100 * r['fraction_of_floor']:.0f} % |")
    peaks = ", ".join(f"{lim}: fp32 {p['float32']:.0f}, bf16 {p['bfloat16']:.0f}" for lim, p in result["peaks"].items())
    lines += ["", f"Matrix-product peak of the core (1024^3, GFLOP/s): {peaks}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.tools.perf", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="toon")
    p.add_argument("--core", type=int, default=0)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--limits", default="shipped,avx2")
    p.add_argument("--out", default=None)
    p.add_argument("--md", default=None)
    p.add_argument("--picture", action="store_true",
                   help="a picture avatar (the learned decoder) instead of a cartoon drawn by its rig")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.model, args.variants.split(","), rig=not args.picture)
        return 0
    result = run_perf(args.model, args.core, args.rounds, tuple(args.variants.split(",")),
                      tuple(args.limits.split(",")), rig=not args.picture)
    text = format_table(result)
    from engine.files import atomic_write_text
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n", mode=0o644)
    if args.md:
        atomic_write_text(args.md, text + "\n", mode=0o644)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

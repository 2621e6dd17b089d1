"""`avatarcam bench`: JSON benchmarks of the engine, the whole audio->frames path, and a long soak.

Timings are measured, never asserted in tests: these machines are shared and noisy, so every
benchmark reports medians/percentiles and ratios measured within one run.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from engine.config import SAMPLE_RATE

from .demo import demo_identity, demo_portrait, demo_voice
from .errors import ConfigError



def rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except Exception:
        return float("nan")


def machine() -> dict:
    import torch
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def bench_e2e(model: str | None = None, seconds: float = 20.0, block_ms: int = 20, threads: int = 0) -> dict:
    """Audio -> features -> step -> decode as fast as possible: can it keep up with real time?"""
    from engine.stream import open_stream
    from .models import resolve_model
    from .engine_setup import set_threads
    set_threads(threads)              # the session's thread policy, so the numbers are the app's
    stream = open_stream(resolve_model(model or "toon"))
    stream.start(demo_portrait(), identity=demo_identity())
    pcm = demo_voice(seconds)
    n = int(block_ms * SAMPLE_RATE / 1000)
    frames, t_feat = 0, []
    t0 = time.perf_counter()
    for i in range(0, len(pcm), n):
        t1 = time.perf_counter()
        frames += len(stream.push_audio(pcm[i:i + n]))
        t_feat.append(time.perf_counter() - t1)
    frames += len(stream.flush())
    wall = time.perf_counter() - t0
    step = np.asarray(stream.step_ms[stream.sampler.latency_blocks:])
    dec = np.asarray(stream.decode_ms)
    per_frame_ms = wall * 1000 / max(frames, 1)
    return {
        "model": stream.card.name, "fps_target": stream.fps, "resolution": list(stream.size),
        "block_frames": stream.frames_per_block, "audio_seconds": seconds, "frames": frames,
        "wall_s": round(wall, 3), "fps_achieved": round(frames / wall, 2),
        "ms_per_frame": round(per_frame_ms, 3), "realtime": frames / wall >= stream.fps,
        "step_ms_p50": round(float(np.percentile(step, 50)), 3), "step_ms_p95": round(float(np.percentile(step, 95)), 3),
        "decode_ms_per_block_p50": round(float(np.percentile(dec, 50)), 3),
        "features_and_rest_ms_per_frame": round(per_frame_ms - (step.sum() + dec.sum()) / max(frames, 1), 3),
        "expected_latency_ms": round(stream.expected_latency_s * 1000, 1),
        "torch_threads": __import__("torch").get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "rss_mb": round(rss_mb(), 1),
    }


def bench_soak(model: str | None = None, seconds: float = 600.0, sample_every_s: float = 10.0) -> dict:
    """A real-time session (file paced like a mic, null sink) for `seconds`; RSS and step time over time."""
    import tempfile
    from .config import Settings
    from .session import Session
    from .stream_options import SessionOptions
    pcm = demo_voice(seconds)
    settings = Settings()
    settings.camera.enabled = False
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "soak.wav"
        _write_wav(wav, pcm)
        session = Session(settings, SessionOptions(model=model, avatar_image=demo_portrait(),
                                                   avatar_identity=demo_identity(), audio_file=wav,
                                                   realtime=True, preview=True, obs=False))
        session.start()
        t0 = time.monotonic()
        while not session.wait(sample_every_s):
            st = session.stats()
            samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(), 1),
                            "step_ms_p50": round(st.step_ms_p50, 2), "step_ms_p95": round(st.step_ms_p95, 2),
                            "output_fps": round(st.output_fps, 2), "latency_ms": round((st.latency_s or 0) * 1000, 1),
                            "dropped": st.dropped_frames, "repeated": st.repeated_frames})
        final = session.stats()
    first, last = (samples[1] if len(samples) > 1 else samples[0]), samples[-1]
    return {
        "model": model or "toon", "seconds": seconds, "samples": samples,
        "final": final.as_dict(), "error": str(session.error) if session.error else None,
        "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
        "step_p50_ratio_last_first": round(last["step_ms_p50"] / first["step_ms_p50"], 3) if first["step_ms_p50"] else None,
    }


def _write_wav(path: Path, pcm: np.ndarray) -> None:
    import wave
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())


def bench_tune(model: str | None = None) -> dict:
    """Measure the CPU variants for this machine and model now and keep the fastest (engine.backend=auto)."""
    from dataclasses import asdict
    from .models import resolve_model
    from .tuning import tune
    choice = tune(resolve_model(model or "toon"), say=lambda m: print(m, flush=True), compile=True)
    return {"choice": asdict(choice), "summary": choice.describe()}


def bench_backends(model: str | None = None, rounds: int = 40, md: Path | None = None) -> dict:
    """docs/performance.md's table: every variant x instruction-set limit, side by side on one core."""
    from engine.tools.perf import format_table, run_perf
    from .models import resolve_model
    result = run_perf(str(resolve_model(model or "toon")), rounds=rounds)
    if md is not None:
        from engine.files import atomic_write_text
        atomic_write_text(md, format_table(result) + "\n", mode=0o644)
    return result


def run_bench(what: str, out: Path | None = None, steps: int | None = None, quick: bool = False,
              model: str | None = None, md: Path | None = None) -> dict:
    if what == "tune":
        result = bench_tune(model)
    elif what == "backends":
        result = bench_backends(model, rounds=steps or (4 if quick else 40), md=md)
    elif what == "engine":
        from engine.tools.bench import run_engine_bench
        result = run_engine_bench("micro" if quick else "toon", steps=steps or (60 if quick else 2000),
                                  sweep=not quick)
    elif what == "e2e":
        result = bench_e2e(model, seconds=steps or (4 if quick else 30))
    elif what == "soak":
        result = bench_soak(model, seconds=steps or (20 if quick else 600), sample_every_s=2 if quick else 10)
    else:
        raise ConfigError(f"unknown benchmark '{what}' (engine, e2e, soak, backends, tune)")
    result = {"benchmark": what, "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"), **result}
    if out is not None:
        from engine.files import atomic_write_text
        atomic_write_text(out, json.dumps(result, indent=2))
    return result

"""GPU benchmark of the paper-size model: ms per video frame for the paper's (B, N) sweep, per backend.

The 1.3B architecture with random weights (speed does not depend on the values) at 832x480
(latent 60x104, 1560 tokens per latent frame), 25 fps, bf16. For every backend (eager,
torch.compile, torch-tensorrt) and every (B, N) at L = 4 it times steady-state window steps; it
also times the Wan VAE's streaming decode and the wav2vec2 features per video frame, records the
peak GPU memory, and puts a physical floor beside each number: the FLOPs of one step divided by
the bf16 matmul rate measured on the same GPU.

    python -m engine.tools.gpu_bench --out docs/bench_gpu.json
    python -m engine.tools.gpu_bench --dry-run --out /tmp/dry.json      # CPU, tiny sizes: checks the code path
"""
from __future__ import annotations

import argparse
import datetime as _dt
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from engine.backends import BACKENDS, compile_model
from engine.codecs.wan_vae import StreamingDecoder, WanVAE, WanVAEConfig
from engine.config import ModelConfig, StreamConfig, to_dict
from engine.flops import call_flops, steady_calls
from engine.model import CausalDiT
from engine.sampler import StreamingSampler
from engine.tools.bench import write_json

log = logging.getLogger(__name__)

SCHEMA = "avatarcam.bench.gpu/1"
POINTS: tuple[tuple[int, int], ...] = ((1, 4), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (4, 4))
TIMESTEPS = (1000, 800, 400, 200)     # L = 4
TARGET_MS_PER_FRAME = 25.0            # end to end at B=4, N=1 on one GPU (our goal)
PAPER_MS_PER_FRAME = 34.14            # the authors' model step alone, B=4, N=1 (hardware not stated)


@dataclass
class BenchPlan:
    model: ModelConfig
    latent: tuple[int, int]
    device: str
    dtype: torch.dtype
    backends: tuple[str, ...]
    points: tuple[tuple[int, int], ...]
    steps: int
    warmup: int
    vae: WanVAEConfig
    wav2vec: dict = field(default_factory=dict)   # Wav2Vec2Config kwargs ({} = the base model)
    video_frames_per_latent: int = 4
    fps: float = 25.0
    matmul_size: int = 8192
    dry_run: bool = False
    cache_dir: str | None = None

    @property
    def tokens_per_frame(self) -> int:
        _, ph, pw = self.model.patch_size
        return (self.latent[0] // ph) * (self.latent[1] // pw)


def stream_for(block_frames: int, passes: int) -> StreamConfig:
    return StreamConfig(block_frames=block_frames, timesteps=TIMESTEPS, passes=passes)


# -- FLOPs and the floor ----------------------------------------------------------------------------
def step_flops(cfg: ModelConfig, stream: StreamConfig, tokens_per_frame: int) -> int:
    """Multiply-add FLOPs of one steady-state step (N denoise calls over the window + the cache update)."""
    return sum(sum(call_flops(cfg, f, m, tokens_per_frame).values()) for _, f, m in steady_calls(stream, "cached"))


def flops_per_video_frame(cfg: ModelConfig, stream: StreamConfig, tokens_per_frame: int,
                          video_frames_per_latent: int = 4) -> float:
    return step_flops(cfg, stream, tokens_per_frame) / (stream.block_frames * video_frames_per_latent)


def floor_ms_per_frame(flops_per_frame: float, flops_per_s: float) -> float:
    """The physical floor: every FLOP at the measured matmul rate, nothing else (no memory traffic)."""
    return flops_per_frame / flops_per_s * 1e3


# -- measurement helpers -----------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """Measured dense matmul FLOP/s (2 n^3 per product) in `dtype` on `device`."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    timed(lambda: a @ b, device, 3)
    ms = statistics.median(timed(lambda: a @ b, device, repeats))
    return 2 * n ** 3 / (ms * 1e-3)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


# -- the parts ---------------------------------------------------------------------------------------
def build_model(plan: BenchPlan) -> CausalDiT:
    torch.manual_seed(0)
    with torch.device(plan.device):
        model = CausalDiT(plan.model)
    return model.to(plan.dtype).eval().requires_grad_(False)


def bench_point(model: CausalDiT, plan: BenchPlan, backend: str, block_frames: int, passes: int,
                rate: float) -> dict[str, Any]:
    device = torch.device(plan.device)
    stream = stream_for(block_frames, passes)
    wrapped = compile_model(model, backend, dtype=plan.dtype, device=device, stream=stream,
                            cache_dir=plan.cache_dir)
    gen = torch.Generator().manual_seed(1)
    cfg = plan.model
    sampler = StreamingSampler(wrapped, stream, generator=torch.Generator().manual_seed(2))
    text = torch.randn(1, cfg.text_len, cfg.text_dim, generator=gen) if cfg.has_text else None
    sampler.start(torch.randn(cfg.out_dim, *plan.latent, generator=gen), text)
    audio = torch.randn(block_frames * cfg.audio_pack, cfg.audio_dim, generator=gen)
    _peak_reset(device)
    t0 = time.perf_counter()
    for _ in range(stream.window_blocks + plan.warmup):       # warm-up windows, compilation, autotuning
        sampler.step(audio)
    _sync(device)
    warm_s = time.perf_counter() - t0
    ms = timed(lambda: sampler.step(audio), device, plan.steps)
    frames = block_frames * plan.video_frames_per_latent
    per_frame = flops_per_video_frame(cfg, stream, plan.tokens_per_frame, plan.video_frames_per_latent)
    p50 = statistics.median(ms)
    return {"backend": backend, "active_backend": wrapped.stats.active, "fallback_reason": wrapped.stats.reason,
            "B": block_frames, "N": passes, "L": stream.window_blocks, "steps": plan.steps,
            "step_ms_p50": p50, "step_ms_min": min(ms), "ms_per_video_frame": p50 / frames,
            "gflop_per_video_frame": per_frame / 1e9,
            "floor_ms_per_video_frame": floor_ms_per_frame(per_frame, rate),
            "compiled_calls": wrapped.stats.compiled_calls, "eager_calls": wrapped.stats.eager_calls,
            "warmup_s": warm_s, "peak_memory_bytes": _peak(device)}


def bench_vae(plan: BenchPlan, blocks: int) -> dict[str, Any]:
    """Streaming Wan VAE decode of blocks of 4 latent frames, after the reference frame."""
    device = torch.device(plan.device)
    torch.manual_seed(0)
    with torch.device(device):
        vae = WanVAE(plan.vae)
    vae = vae.to(plan.dtype).eval()
    decoder = StreamingDecoder(vae)
    latents = torch.randn(1, 4, plan.vae.z_dim, *plan.latent, device=device, dtype=plan.dtype)
    decoder.decode(latents[:, :1])
    _peak_reset(device)
    decoder.decode(latents)                                     # warm-up
    ms = timed(lambda: decoder.decode(latents), device, blocks)
    frames = 4 * plan.vae.temporal_factor
    return {"ms_per_video_frame": statistics.median(ms) / frames, "block_ms_p50": statistics.median(ms),
            "latent_frames_per_block": 4, "dtype": str(plan.dtype).removeprefix("torch."),
            "peak_memory_bytes": _peak(device)}


def bench_wav2vec(plan: BenchPlan, blocks: int) -> dict[str, Any]:
    """Streaming wav2vec2 features (random weights, base config unless told), 16 video frames per push."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    from engine.codecs.wav2vec import Wav2VecFeatures
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        Wav2Vec2Model(Wav2Vec2Config(**plan.wav2vec)).save_pretrained(folder)
        Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                 return_attention_mask=False).save_pretrained(folder)
        features = Wav2VecFeatures(folder, device=plan.device, fps=int(plan.fps))
    device = torch.device(plan.device)
    chunk = torch.randn(16 * features.samples_per_frame, generator=torch.Generator().manual_seed(0)).numpy() * 0.1
    for _ in range(3):
        features.push(chunk)
    ms = timed(lambda: features.push(chunk), device, blocks)
    return {"ms_per_video_frame": statistics.median(ms) / 16, "push_ms_p50": statistics.median(ms),
            "context_frames": features.context_frames, "lookahead_frames": features.lookahead_frames,
            "feature_dim": features.dim, "device": plan.device}


def run(plan: BenchPlan) -> dict[str, Any]:
    device = torch.device(plan.device)
    # every (B, N) point compiles two shapes of the same forward: keep them all instead of falling back
    for knob in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, max(getattr(torch._dynamo.config, knob), 64))
    t0 = time.perf_counter()
    rate = matmul_rate(device, plan.dtype, plan.matmul_size)
    model = build_model(plan)
    points = []
    for backend in plan.backends:
        for b, n in plan.points:
            log.info("%s B=%d N=%d", backend, b, n)
            points.append(bench_point(model, plan, backend, b, n, rate))
    result = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dry_run": plan.dry_run,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "dtype": str(plan.dtype).removeprefix("torch."),
        "config": {"model": to_dict(plan.model), "latent": list(plan.latent), "tokens_per_frame": plan.tokens_per_frame,
                   "fps": plan.fps, "video_frames_per_latent": plan.video_frames_per_latent, "weights": "random",
                   "params": sum(p.numel() for p in model.parameters())},
        "matmul_flops_per_s": rate,
        "points": points,
        "vae": bench_vae(plan, max(2, plan.steps // 2)),
        "wav2vec": bench_wav2vec(plan, max(2, plan.steps // 2)),
        "peak_memory_bytes": _peak(device),
        "target_ms_per_video_frame": TARGET_MS_PER_FRAME,
        "paper_ms_per_video_frame_model_step": PAPER_MS_PER_FRAME,
    }
    result["total_s"] = time.perf_counter() - t0
    return result


# -- command line ------------------------------------------------------------------------------------
def _points(text: str) -> tuple[tuple[int, int], ...]:
    try:
        pairs = tuple(tuple(int(v) for v in item.split(",")) for item in text.split())
    except ValueError:
        pairs = ()
    if not pairs or any(len(p) != 2 or min(p) < 1 for p in pairs):
        raise argparse.ArgumentTypeError(f"points are 'B,N' pairs separated by spaces, e.g. '4,1 2,1'; got {text!r}")
    return pairs  # type: ignore[return-value]


def _backends(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in BACKENDS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"backends are a comma list of {', '.join(BACKENDS)}; got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.tools.gpu_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/bench_gpu.json", help="JSON file to write")
    p.add_argument("--backends", type=_backends, default=BACKENDS, help="comma list (default: all three)")
    p.add_argument("--points", type=_points, default=POINTS, help="'B,N' pairs, default the paper's sweep")
    p.add_argument("--steps", type=int, default=20, help="timed steady steps per point")
    p.add_argument("--warmup", type=int, default=3, help="extra steps after the window fills, not timed")
    p.add_argument("--dtype", choices=("bfloat16", "float16"), default="bfloat16")
    p.add_argument("--cache-dir", default=None, help="where TensorRT engines are kept between runs")
    p.add_argument("--dry-run", action="store_true",
                   help="CPU, tiny model and sizes, eager only unless --backends: checks the code path, measures nothing")
    return p


def plan_from_args(args: argparse.Namespace) -> BenchPlan:
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("--steps must be >= 1 and --warmup >= 0")
    if args.dry_run:
        backends = args.backends if args.backends != BACKENDS else ("eager",)
        return BenchPlan(model=ModelConfig.tiny(), latent=(4, 4), device="cpu", dtype=torch.float32,
                         backends=backends, points=args.points, steps=min(args.steps, 2), warmup=0,
                         vae=WanVAEConfig.tiny(),
                         wav2vec={"hidden_size": 14, "num_hidden_layers": 2, "num_attention_heads": 2,
                                  "intermediate_size": 16, "conv_dim": (8,) * 7, "num_conv_pos_embeddings": 4,
                                  "num_conv_pos_embedding_groups": 2},
                         matmul_size=128, dry_run=True, cache_dir=args.cache_dir)
    if not torch.cuda.is_available():
        raise SystemExit("engine.tools.gpu_bench measures an NVIDIA GPU and none is visible to torch "
                         f"(torch {torch.__version__}, CUDA {'built' if torch.version.cuda else 'not built'}). "
                         "Run it on a GPU machine, or use --dry-run to check the code path on the CPU.")
    return BenchPlan(model=ModelConfig.paper(), latent=(60, 104), device="cuda",
                     dtype=getattr(torch, args.dtype), backends=args.backends, points=args.points, steps=args.steps,
                     warmup=args.warmup, vae=WanVAEConfig(), cache_dir=args.cache_dir)


def format_summary(result: dict[str, Any]) -> str:
    lines = [f"{result['device']} ({result['dtype']}{', DRY RUN: not a measurement' if result['dry_run'] else ''}); "
             f"matmul {result['matmul_flops_per_s'] / 1e12:.1f} TFLOP/s",
             "| backend | B,N | ms/frame | floor ms/frame | active |", "|---|---|---|---|---|"]
    for p in result["points"]:
        lines.append(f"| {p['backend']} | {p['B']},{p['N']} | {p['ms_per_video_frame']:.2f} | "
                     f"{p['floor_ms_per_video_frame']:.2f} | {p['active_backend']} |")
    lines.append(f"VAE decode {result['vae']['ms_per_video_frame']:.2f} ms/frame; wav2vec2 "
                 f"{result['wav2vec']['ms_per_video_frame']:.2f} ms/frame; peak memory {result['peak_memory_bytes']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    plan = plan_from_args(args)
    result = run(plan)
    write_json(result, args.out)
    sys.stdout.write(format_summary(result) + f"\nwrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

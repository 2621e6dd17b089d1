"""Backends: torch.compile matches eager on the CPU; TensorRT's fallback and engine cache key.

TensorRT itself needs an NVIDIA GPU: its parity test is skipped without CUDA (the CUDA boundary).
The compiled test uses inductor's "default" mode: "max-autotune-no-cudagraphs" (the CPU default)
took 76 s to compile the micro model on this 2-core machine against 22 s; the routing and the
numerics are the same code path.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.backends import (GPU_INSTALL_HINT, Signature, compile_model, engine_cache_key, steady_calls,
                             weights_fingerprint)
from engine.config import ModelConfig, StreamConfig
from engine.model import CausalDiT
from engine.sampler import StreamingSampler

# B=1, L=2, no temporal anchor: the steady state is one call shape (2 frames + the style anchor).
STREAM = StreamConfig(block_frames=1, timesteps=(1000, 500), temporal_frames=0)
ROOT = Path(__file__).resolve().parents[1]


def micro_model(seed: int = 0) -> CausalDiT:
    torch.manual_seed(seed)
    return CausalDiT(ModelConfig.micro()).eval()


def run_stream(model, steps: int = 5) -> list[torch.Tensor]:
    sampler = StreamingSampler(model, STREAM, generator=torch.Generator().manual_seed(1))
    sampler.start(torch.randn(4, 4, 4, generator=torch.Generator().manual_seed(2)))
    audio = torch.randn(1, 12, generator=torch.Generator().manual_seed(3))
    out = [sampler.step(audio) for _ in range(steps)]
    return [o for o in out if o is not None] + sampler.flush()


def write_compiled_run(out: Path) -> None:
    """Eager and compiled frames of the same stream, and the wrapper's counts, into `out`."""
    eager = run_stream(micro_model())
    wrapped = compile_model(micro_model(), "compile", stream=STREAM, mode="default")
    compiled = run_stream(wrapped)
    tensors = {f"eager{i}": t.contiguous() for i, t in enumerate(eager)}
    tensors.update({f"compiled{i}": t.contiguous() for i, t in enumerate(compiled)})
    stats = wrapped.stats
    meta = {"active": stats.active, "compiled_calls": str(stats.compiled_calls), "eager_calls": str(stats.eager_calls),
            "programs": json.dumps(stats.programs), "eager_frames": str(len(eager)),
            "compiled_frames": str(len(compiled))}
    save_file(tensors, str(out), metadata=meta)


@pytest.fixture(scope="module")
def compiled_run(tmp_path_factory):
    """Compiled in a child process: torch.compile leaves dynamo's hooks (an nn.Module.__init__ patch,
    frame evaluation) in the process, and a later test building models on a worker thread under them
    crashed the suite once under load. The child keeps the pytest process free of dynamo."""
    out = tmp_path_factory.mktemp("compiled") / "run.safetensors"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
        eager = [f.get_tensor(f"eager{i}") for i in range(int(meta["eager_frames"]))]
        compiled = [f.get_tensor(f"compiled{i}") for i in range(int(meta["compiled_frames"]))]
    return eager, compiled, meta


def test_torch_compile_stream_matches_eager(compiled_run):
    eager, compiled, _ = compiled_run
    assert len(eager) == len(compiled) == 5
    err = max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(eager, compiled))
    assert err < 1e-4, err   # measured 2.9e-7 for one call on this machine


def test_only_steady_state_calls_run_compiled(compiled_run):
    _, _, stats = compiled_run
    assert steady_calls(STREAM) == {(2, 1)}
    # 1 prefill + 1 warm-up window run eager; 4 full windows + 1 drain window (1 block) -> 4 compiled, 2 eager
    assert stats["active"] == "compile" and int(stats["compiled_calls"]) == 4
    assert int(stats["eager_calls"]) == 3
    assert json.loads(stats["programs"]) == ["compile 2f/1m"]


def test_tensorrt_without_gpu_or_package_falls_back_to_eager_with_one_message(caplog):
    model = micro_model()
    with caplog.at_level(logging.WARNING, logger="engine.backends"):
        wrapped = compile_model(model, "tensorrt", stream=STREAM)
        out = run_stream(wrapped)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and GPU_INSTALL_HINT in warnings[0]
    assert wrapped.stats.active == "eager" and wrapped.stats.compiled_calls == 0
    assert all(torch.equal(a, b) for a, b in zip(out, run_stream(micro_model())))


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="eager"):
        compile_model(micro_model(), "onnx")


def test_engine_cache_key_changes_with_gpu_shape_dtype_positions_and_weights():
    sig = Signature((1, 16, 16, 60, 104), 3, (3.0, 4.0), (0.0, 1.0, 2.0), True, "bfloat16")
    base = engine_cache_key("NVIDIA H100", sig, "w1", {"torch": "2.13"})
    assert base == engine_cache_key("NVIDIA H100", sig, "w1", {"torch": "2.13"})
    variants = [engine_cache_key("NVIDIA A100", sig, "w1", {"torch": "2.13"}),
                engine_cache_key("NVIDIA H100", sig, "w2", {"torch": "2.13"}),
                engine_cache_key("NVIDIA H100", sig, "w1", {"torch": "2.14"})]
    for change in ({"x": (1, 4, 16, 60, 104)}, {"dtype": "float16"}, {"memory_pos": (5.0, 1.0, 2.0)},
                   {"memory_frames": 1}):
        variants.append(engine_cache_key("NVIDIA H100", Signature(**{**sig.__dict__, **change}), "w1",
                                         {"torch": "2.13"}))
    assert len({base, *variants}) == len(variants) + 1
    assert base.startswith("dit-16f3m-bfloat16-")


def test_weights_fingerprint_follows_the_weights():
    a, b = micro_model(0), micro_model(0)
    assert weights_fingerprint(a) == weights_fingerprint(b)
    with torch.no_grad():
        b.head.head.bias[0] += 1e-3
    assert weights_fingerprint(a) != weights_fingerprint(b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TensorRT needs a CUDA GPU (the CUDA boundary)")
def test_tensorrt_stream_matches_eager_on_gpu(tmp_path):
    pytest.importorskip("torch_tensorrt")
    eager = run_stream(micro_model().cuda().float())
    wrapped = compile_model(micro_model(), "tensorrt", dtype=torch.float32, device="cuda", cache_dir=tmp_path,
                            stream=STREAM)
    out = run_stream(wrapped)
    assert wrapped.stats.active == "tensorrt" and wrapped.stats.compiled_calls > 0
    assert max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(eager, out)) < 1e-2
    assert list(tmp_path.glob("*.ep"))


# -- the GPU benchmark script, on the CPU ---------------------------------------------------------------
def test_gpu_bench_flops_of_the_paper_step_match_a_hand_count():
    from engine.tools.gpu_bench import step_flops, stream_for
    d, ffn, layers, s, text = 1536, 8960, 30, 1560, 512

    def transformer(frames: int, memory: int) -> int:   # per call: projections, attention, FFN, text attention
        t, k = frames * s, (frames + memory) * s
        return layers * (2 * t * 4 * d * d + 4 * t * k * d + 4 * t * d * ffn + 4 * t * d * d + 4 * t * text * d)

    hand = transformer(16, 3) + transformer(4, 3)        # B=4, L=4: the window + the cache update, anchor + 2 frames
    counted = step_flops(ModelConfig.paper(), stream_for(4, 1), s)
    assert hand <= counted < hand * 1.01                  # the rest (embeddings, head, audio) is under 1 %
    assert round(counted / 1e12) == 230


def test_gpu_bench_parses_points_and_backends_and_refuses_bad_ones():
    from engine.tools.gpu_bench import build_parser
    args = build_parser().parse_args(["--points", "4,1 2,2", "--backends", "eager,tensorrt", "--out", "x.json"])
    assert args.points == ((4, 1), (2, 2)) and args.backends == ("eager", "tensorrt")
    for bad in (["--points", "4"], ["--backends", "onnx"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_gpu_bench_without_cuda_fails_fast_naming_the_dry_run():
    from engine.tools.gpu_bench import build_parser, plan_from_args
    with pytest.raises(SystemExit, match="no.*GPU|none is visible.*--dry-run"):
        plan_from_args(build_parser().parse_args([]))


def test_gpu_bench_dry_run_runs_every_part_end_to_end(tmp_path):
    import json

    pytest.importorskip("transformers")
    from engine.tools.gpu_bench import main
    out = tmp_path / "dry.json"
    assert main(["--dry-run", "--points", "2,1", "--steps", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["dry_run"] is True and result["device"] == "cpu"
    (point,) = result["points"]
    assert (point["B"], point["N"], point["active_backend"]) == (2, 1, "eager") and point["ms_per_video_frame"] > 0
    assert point["floor_ms_per_video_frame"] > 0 and result["vae"]["ms_per_video_frame"] > 0
    assert result["wav2vec"]["feature_dim"] == ModelConfig.tiny().audio_dim


if __name__ == "__main__":      # the child process of the `compiled_run` fixture
    write_compiled_run(Path(sys.argv[1]))

"""Execution backends for the DiT: eager, torch.compile and torch-tensorrt, behind one call.

Why a wrapper and not a compiled module: the stream's first windows (warm-up) hold fewer blocks and
a growing cache, so their shapes differ from the steady state, and a compiler that specialises on
shapes would either recompile for every one of them or run dynamic (slower) kernels everywhere.
The steady state has exactly two call shapes (the denoise window of L*B frames and the cache
update of B frames, both with anchor + temporal frames of memory) and, with the cache's relative
positions, constant RoPE positions too. `CompiledModel` sends those calls to the compiled code and
everything else (prefill, warm-up, drain) to the eager model: same weights, same results.

A backend that cannot run here (no GPU, torch-tensorrt not installed, a compile error) falls back
to eager with one logged message saying why and how to fix it; a stream never fails for it.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .config import StreamConfig
from .files import atomic_write
from .model import CausalDiT, Memory

log = logging.getLogger(__name__)

BACKENDS = ("eager", "compile", "tensorrt")
GPU_INSTALL_HINT = "pip install 'avatarcam[gpu]'"
ENGINE_FORMAT = 1   # bump when the saved engine layout changes


@dataclass(frozen=True)
class Signature:
    """What a compiled program is specialised on: shapes, dtype and the (constant) RoPE positions."""

    x: tuple[int, ...]
    memory_frames: int
    frame_pos: tuple[float, ...]
    memory_pos: tuple[float, ...]
    has_text: bool
    dtype: str

    @property
    def frames(self) -> int:
        return self.x[1]


def signature(x: torch.Tensor, frame_pos: torch.Tensor, memory: Memory | None, text_kv: Any) -> Signature:
    mem = memory if memory is not None and memory.frames else None
    return Signature(tuple(x.shape), mem.frames if mem else 0, tuple(float(p) for p in frame_pos.flatten()),
                     tuple(float(p) for p in mem.frame_pos.flatten()) if mem else (), text_kv is not None,
                     str(x.dtype).removeprefix("torch."))


def steady_calls(stream: StreamConfig) -> set[tuple[int, int]]:
    """(query frames, memory frames) of the calls a steady-state window step makes."""
    memory = (1 if stream.style_anchor else 0) + (stream.temporal_frames if stream.kv_cache else 0)
    calls = {(stream.window_blocks * stream.block_frames, memory)}
    if stream.kv_cache and stream.temporal_frames:
        calls.add((stream.block_frames, memory))
    return calls


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def default_compile_mode(device: torch.device) -> str:
    """CUDA graphs on the GPU (the steady shapes are static); no graphs on the CPU, where they do not exist."""
    return "reduce-overhead" if device.type == "cuda" else "max-autotune-no-cudagraphs"


# -- cache keys ------------------------------------------------------------------------------------
def weights_fingerprint(model: nn.Module) -> str:
    """A cheap identity of the weights (names, shapes, dtypes, sums and a few values per tensor).

    Not cryptographic: it tells a retrained or re-imported checkpoint from the one an engine was
    built for without reading gigabytes through a hash on every start.
    """
    digest = hashlib.sha256()
    stats = []
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        flat = tensor.detach().flatten()
        if flat.numel() and not tensor.is_meta:
            head = flat[:4].double()
            stats.append(torch.cat([flat.double().sum()[None], flat.double().abs().sum()[None],
                                    torch.nn.functional.pad(head, (0, 4 - head.numel()))]))
    if stats:
        digest.update(torch.stack(stats).cpu().numpy().tobytes())
    return digest.hexdigest()[:32]


def engine_cache_key(gpu_name: str, sig: Signature, weights: str, versions: dict[str, str] | None = None) -> str:
    """File name stem of a cached TensorRT engine: GPU, shapes, positions, dtype, weights and versions."""
    payload = {"format": ENGINE_FORMAT, "gpu": gpu_name, "x": list(sig.x), "memory_frames": sig.memory_frames,
               "frame_pos": list(sig.frame_pos), "memory_pos": list(sig.memory_pos), "text": sig.has_text,
               "dtype": sig.dtype, "weights": weights, "versions": dict(sorted((versions or {}).items()))}
    blob = json.dumps(payload, sort_keys=True).encode()
    return f"dit-{sig.frames}f{sig.memory_frames}m-{sig.dtype}-{hashlib.sha256(blob).hexdigest()[:24]}"


# -- flat adapter (TensorRT needs a forward over plain tensors) ---------------------------------------
class FlatCall(nn.Module):
    """The model's forward for one signature, over plain tensors, with the RoPE positions as constants.

    Inputs: x, cond, t, audio, then memory keys (per layer), memory values, then text keys/values
    interleaved per layer. Output: (flow, *keys, *values). Positions are baked in because they are
    constant in the steady state and TensorRT cannot run the float64 angle arithmetic.
    """

    def __init__(self, model: CausalDiT, sig: Signature):
        super().__init__()
        self.model = model
        self.layers = model.cfg.num_layers
        self.frame_pos = torch.tensor(sig.frame_pos, dtype=torch.float64)
        self.memory_pos = torch.tensor(sig.memory_pos, dtype=torch.float64) if sig.memory_frames else None
        self.has_text = sig.has_text

    @staticmethod
    def flatten(x, cond, t, audio, memory: Memory | None, text_kv) -> list[torch.Tensor]:
        flat = [x, cond, t, audio]
        if memory is not None and memory.frames:
            flat += list(memory.k) + list(memory.v)
        if text_kv is not None:
            flat += [tensor for pair in text_kv for tensor in pair]
        return flat

    def forward(self, x, cond, t, audio, *rest):
        n = self.layers
        memory = None
        if self.memory_pos is not None:
            memory = Memory(list(rest[:n]), list(rest[n:2 * n]), self.memory_pos)
            rest = rest[2 * n:]
        text = [(rest[2 * i], rest[2 * i + 1]) for i in range(n)] if self.has_text else None
        flow, keys, values = self.model(x, cond, t, audio, self.frame_pos, memory, text)
        return (flow, *keys, *values)


def _unflatten(out: tuple, layers: int) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    return out[0], list(out[1:1 + layers]), list(out[1 + layers:1 + 2 * layers])


# -- the wrapper -----------------------------------------------------------------------------------
@dataclass
class BackendStats:
    requested: str
    active: str
    reason: str = ""
    compiled_calls: int = 0
    eager_calls: int = 0
    programs: list[str] = field(default_factory=list)


class CompiledModel(nn.Module):
    """Drop-in for `CausalDiT` in the samplers: steady-state calls run compiled, the rest eager."""

    def __init__(self, model: CausalDiT, stats: BackendStats, steady: set[tuple[int, int]] | None,
                 program: Callable[[Signature, tuple], tuple] | None):
        super().__init__()
        self.model = model
        self.stats = stats
        self.steady = steady
        self._program = program

    @property
    def cfg(self):
        return self.model.cfg

    @property
    def backend(self) -> str:
        return self.stats.active

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return self.model.grid(height, width)

    def text_kv(self, context):
        return self.model.text_kv(context)

    def tokens_per_frame(self, height: int, width: int) -> int:
        return self.model.tokens_per_frame(height, width)

    def forward(self, x, cond, t, audio, frame_pos, memory=None, text_kv=None, return_kv=True):
        """Compiled programs always return keys/values (one graph per shape); eager honours return_kv."""
        args = (x, cond, t, audio, frame_pos, memory, text_kv)
        if self._program is not None:
            mem_frames = memory.frames if memory is not None else 0
            if self.steady is None or (x.shape[1], mem_frames) in self.steady:
                out = self._program(signature(x, frame_pos, memory, text_kv), args)
                if out is not None:
                    self.stats.compiled_calls += 1
                    return out
        self.stats.eager_calls += 1
        return self.model(*args, return_kv=return_kv)


def _fallback(stats: BackendStats, reason: str) -> None:
    """Switch to eager and say why, once per model (later failures add nothing new for the user)."""
    if stats.reason:
        return
    stats.active, stats.reason = "eager", reason
    log.warning("backend '%s' is not available, running eager: %s", stats.requested, reason)


def _compile_program(model: CausalDiT, device: torch.device, mode: str | None, stats: BackendStats):
    """torch.compile over the model's forward; a failure at the first compiled call falls back for good."""
    compiled = torch.compile(model, mode=mode, dynamic=False, fullgraph=False)
    state = {"broken": False}
    seen: set[Signature] = set()

    def run(sig: Signature, args: tuple):
        if state["broken"]:
            return None
        try:
            if device.type == "cuda" and mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()
            out = compiled(*args)
        except Exception as exc:  # a compiler/toolchain failure must not end the stream
            state["broken"] = True
            _fallback(stats, f"torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                             "check that a C++ compiler (CPU) or Triton (GPU) is installed")
            return None
        if sig not in seen:
            seen.add(sig)
            stats.programs.append(f"compile {sig.frames}f/{sig.memory_frames}m")
        return out

    return run


def _tensorrt_program(model: CausalDiT, device: torch.device, dtype: torch.dtype, cache_dir: Path | None,
                      stats: BackendStats):
    """Build (or load from disk) one TensorRT engine per steady signature, on first use."""
    trt = importlib.import_module("torch_tensorrt")
    gpu = torch.cuda.get_device_name(device)
    weights = weights_fingerprint(model)
    versions = {"torch": torch.__version__, "torch_tensorrt": getattr(trt, "__version__", "?")}
    engines: dict[Signature, Callable | None] = {}

    def build(sig: Signature, args: tuple):
        flat_module = FlatCall(model, sig).eval()
        inputs = FlatCall.flatten(*args[:4], args[5], args[6])
        path = cache_dir / f"{engine_cache_key(gpu, sig, weights, versions)}.ep" if cache_dir else None
        if path is not None and path.exists():
            log.info("loading TensorRT engine %s", path)
            return torch.export.load(str(path)).module()
        log.info("building TensorRT engine for %d frames + %d memory frames (minutes, once per GPU and shape)",
                 sig.frames, sig.memory_frames)
        exported = torch.export.export(flat_module, tuple(inputs))
        engine = trt.dynamo.compile(exported, inputs=inputs, enabled_precisions={dtype}, truncate_double=True,
                                    min_block_size=1)
        if path is not None:
            def save(tmp: str) -> None:
                try:
                    trt.save(engine, tmp, inputs=inputs)
                except TypeError:       # torch-tensorrt >= 2.9 names it arg_inputs
                    trt.save(engine, tmp, arg_inputs=inputs)
            atomic_write(path, save)
        return engine

    def run(sig: Signature, args: tuple):
        if sig not in engines:
            try:
                engines[sig] = build(sig, args)
                stats.programs.append(f"tensorrt {sig.frames}f/{sig.memory_frames}m")
            except Exception as exc:
                engines[sig] = None
                _fallback(stats, f"TensorRT could not build an engine ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); these calls run eager")
        engine = engines[sig]
        if engine is None:
            return None
        return _unflatten(tuple(engine(*FlatCall.flatten(*args[:4], args[5], args[6]))), model.cfg.num_layers)

    return run


def compile_model(model: CausalDiT, backend: str = "eager", dtype: torch.dtype | None = None,
                  device: str | torch.device | None = None, cache_dir: str | os.PathLike | None = None,
                  stream: StreamConfig | None = None, mode: str | None = None) -> CompiledModel:
    """Move the model to device/dtype and wrap it for `backend` ('eager' | 'compile' | 'tensorrt').

    stream: compile only the steady-state calls of this stream (others run eager); None compiles
    every shape it is called with. dtype: default bf16 on CUDA, fp32 on CPU. mode: torch.compile
    mode, default "reduce-overhead" (CUDA graphs) on CUDA, "max-autotune-no-cudagraphs" on CPU.
    cache_dir: where TensorRT engines are kept between runs.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = dtype or default_dtype(device)
    if device.type == "cpu" and dtype in (torch.float16,):
        raise ValueError("float16 is a GPU dtype; use float32 or bfloat16 on the CPU")
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    stats = BackendStats(requested=backend, active=backend)
    steady = steady_calls(stream) if stream is not None else None
    program = None
    if backend == "compile":
        if not hasattr(torch, "compile"):
            _fallback(stats, f"torch {torch.__version__} has no torch.compile; install torch >= 2.3")
        else:
            program = _compile_program(model, device, mode or default_compile_mode(device), stats)
    elif backend == "tensorrt":
        if device.type != "cuda":
            _fallback(stats, f"TensorRT needs an NVIDIA GPU (device is '{device}'); on a GPU machine run "
                             f"{GPU_INSTALL_HINT}")
        else:
            try:
                program = _tensorrt_program(model, device, dtype, Path(cache_dir) if cache_dir else None, stats)
            except ImportError as exc:
                _fallback(stats, f"torch-tensorrt is not installed ({exc}); install it with {GPU_INSTALL_HINT}")
    log.info("DiT backend: %s (requested %s) on %s, %s", stats.active, backend, device,
             str(dtype).removeprefix("torch."))
    return CompiledModel(model, stats, steady, program)

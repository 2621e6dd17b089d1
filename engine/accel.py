"""Faster execution of the same model on a CPU: which backend x dtype, applied to a whole stream.

Why one place: the DiT step and the decoder both have to follow the choice (at 512x512 the decoder
costs a third of the step), the benchmark and the automatic choice must measure exactly what `run`
executes, and the choice must be checked against float32 eager before it is trusted.

Variants (measured in docs/performance.md):
- ``eager/float32``: the reference.
- ``eager/bfloat16``: weights and activations in bf16; pays only where the CPU has native bf16
  (AVX512-BF16, AMX). Without it (AVX2 desktops) oneDNN emulates bf16 and it is slower.
- ``compile/float32``, ``compile/bfloat16``: torch.compile (Inductor) of the steady-state calls,
  which fuses the norms, modulation, RoPE, GELU and the decoder's blend and byte conversion.
- ``int8/float32``: dynamic int8 quantisation of the DiT's linear layers (fbgemm; VNNI where the
  CPU has it). A candidate wherever the CPU has AVX2: with the Default avatar drawn by its rig it
  is the fastest variant held to AVX2 and changes frames as little as bf16 (docs/performance.md).

The decoder's blend with the portrait stays in float32 in every variant (hooks cast the last two
linears' outputs), so where the picture does not change the output is the portrait, pixel for pixel.
"""
from __future__ import annotations

import copy
import logging
import os
import platform
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from engine.config import SAMPLE_RATE

if TYPE_CHECKING:
    from engine.stream import AvatarStream

log = logging.getLogger(__name__)

BACKENDS = ("eager", "compile", "int8")
DTYPES = ("float32", "bfloat16")
ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


@dataclass(frozen=True)
class Variant:
    backend: str = "eager"      # eager | compile | int8
    dtype: str = "float32"      # float32 | bfloat16

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend '{self.backend}' is not one of {BACKENDS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype '{self.dtype}' is not one of {DTYPES} on the CPU")
        if self.backend == "int8" and self.dtype != "float32":
            raise ValueError("int8 quantises float32 linears; use dtype float32 with it")

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.dtype}"

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @classmethod
    def parse(cls, text: str) -> "Variant":
        backend, _, dtype = text.partition("/")
        return cls(backend, dtype or "float32")


REFERENCE = Variant("eager", "float32")


# -- what this CPU and install can do ------------------------------------------------------------------
def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa_limit() -> dict[str, str]:
    """The kernel-library instruction-set limits set in the environment (empty: as shipped)."""
    return {k: os.environ[k] for k in ISA_ENV if os.environ.get(k)}


def native_bf16(flags: set[str] | None = None) -> bool:
    """bf16 matrix products in hardware (AVX512-BF16 or AMX), and not held back to AVX2 here."""
    flags = cpu_flags() if flags is None else flags
    limited = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith(("AVX2", "SSE"))
    return bool(flags & {"avx512_bf16", "amx_bf16"}) and not limited


def c_compiler() -> str | None:
    """torch.compile on the CPU writes C++: without a compiler it cannot run."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def machine_key(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a measured choice depends on: CPU model, instruction sets, limits, library versions, threads."""
    flags = cpu_flags()
    return {"cpu": cpu_model(), "flags": sorted(flags & set(_FLAGS)),
            "capability": torch.backends.cpu.get_cpu_capability(), "limits": isa_limit(),
            "torch": torch.__version__, "onednn": str(torch.backends.mkldnn.is_available()),
            "python": platform.python_version(), "threads": torch.get_num_threads(), **(extra or {})}


def candidates(flags: set[str] | None = None, compiler: bool | None = None) -> list[Variant]:
    """The variants worth measuring here, reference first: bf16 only with native bf16, int8 only with
    AVX2 (fbgemm's kernels), compile only with a compiler."""
    flags = cpu_flags() if flags is None else flags
    compiler = c_compiler() is not None if compiler is None else compiler
    dtypes = ["float32"] + (["bfloat16"] if native_bf16(flags) else [])
    out = [Variant("eager", d) for d in dtypes]
    if "avx2" in flags:
        out.append(Variant("int8", "float32"))
    if compiler and hasattr(torch, "compile"):
        out += [Variant("compile", d) for d in dtypes]
    return out


# -- the decoder ------------------------------------------------------------------------------------------
def _float_output(_module, _inputs, output):
    return output.float()


class FastRefDecode:
    """RefDecoder.decode in another dtype and/or compiled, with the portrait blend kept in float32.

    Drop-in for `ToonDecoder.fast_decode`: (latents, prepared reference, drive) -> uint8 frames.
    The reference tuple from `RefDecoder.prepare` (float32) is cast once per stream.
    """

    def __init__(self, decoder: torch.nn.Module, dtype: torch.dtype = torch.float32, compile: bool = False):
        from engine.codecs.refdecoder import from_patches
        self.dtype = dtype
        self.net = copy.deepcopy(decoder).to(dtype=dtype).eval().requires_grad_(False)
        self.net = self.net.to(memory_format=torch.channels_last)
        base = getattr(self.net, "base", None)      # the autoencoder's decoder, held outside the state dict
        if base is not None:
            object.__setattr__(self.net, "base", base.to(dtype=dtype).eval().requires_grad_(False))
        if dtype != torch.float32:
            self.net.rgb.register_forward_hook(_float_output)
            self.net.alpha.register_forward_hook(_float_output)
        patch = self.net.cfg.out_patch

        def frames(z, portrait, z_ref, f0, f1, f2, f3, drive):
            frame = self.net(z, (portrait, z_ref, [f0, f1, f2, f3]), drive)
            pixels = frame.add(1.0).mul(127.5).add(0.5).clamp(0, 255).to(torch.uint8)
            return from_patches(pixels, patch)

        self._fn = torch.compile(frames, dynamic=False) if compile else frames
        self._ref_id: int | None = None
        self._ref: tuple = ()

    def _cast(self, ref: tuple) -> tuple:
        if self._ref_id != id(ref):
            portrait, z_ref, feats = ref
            self._ref = (portrait.float(), z_ref.to(self.dtype),
                         *[f.to(self.dtype).contiguous(memory_format=torch.channels_last) for f in feats])
            self._ref_id = id(ref)
        return self._ref

    @torch.no_grad()
    def __call__(self, z: torch.Tensor, ref: tuple, drive: torch.Tensor | None = None) -> np.ndarray:
        portrait, z_ref, *feats = self._cast(ref)
        if drive is None:
            drive = torch.zeros(z.shape[0], self.net.cfg.drive_dim)
        return self._fn(z.to(self.dtype), portrait, z_ref, *feats, drive.to(self.dtype)).numpy()


# -- a whole stream --------------------------------------------------------------------------------------
def apply_variant(stream: "AvatarStream", variant: Variant) -> dict[str, Any]:
    """Make `stream` (built in float32 on the CPU, not started) run `variant`; returns what became of it.

    The DiT: bf16 by casting, compile through `engine.backends.compile_model` (steady-state calls
    compiled, warm-up eager), int8 by dynamic quantisation. The decoder follows dtype and compile.
    """
    info: dict[str, Any] = {"variant": variant.name}
    model = stream.model
    if variant.backend == "compile":
        from torch import _dynamo   # not `import torch._dynamo`: that makes `torch` local to this function
        from engine.backends import compile_model
        # every model instance and steady shape is its own graph of the same forward; the default
        # limit of 8 is reached by a process holding a few compiled streams (the tuner, the benchmark),
        # and past it dynamo silently runs eager
        _dynamo.config.recompile_limit = max(_dynamo.config.recompile_limit, 64)
        wrapped = compile_model(model, "compile", dtype=variant.torch_dtype, device="cpu",
                                stream=stream.stream_config, mode="default")
        stream.sampler.model = wrapped
        info["backend_stats"] = wrapped.stats
    elif variant.backend == "int8":
        quantised = torch.ao.quantization.quantize_dynamic(model.float(), {torch.nn.Linear}, dtype=torch.qint8)
        stream.sampler.model = quantised
    else:
        model.to(variant.torch_dtype)
    decoder = stream.decoder
    if getattr(decoder, "ref_decoder", None) is not None and hasattr(decoder, "fast_decode"):
        if variant.backend == "compile" or variant.dtype != "float32":
            decoder.fast_decode = FastRefDecode(decoder.ref_decoder, variant.torch_dtype,
                                                compile=variant.backend == "compile")
    return info


def open_variant_stream(card, variant: Variant, seed: int = 0, **overrides) -> "AvatarStream":
    """A CPU stream of `card` running `variant` (for the tuner and the benchmark)."""
    from engine.stream import AvatarStream
    stream = AvatarStream(card, device="cpu", dtype=torch.float32, seed=seed, **overrides)
    apply_variant(stream, variant)
    return stream


# -- parity --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tolerance:
    """How far a variant's frames may be from float32 eager's, on the same audio, seed and avatar.

    Measured on 24 frames (about a second) of speech: max_mean is the mean absolute difference of
    the worst frame (0..255 levels), max_p99 its 99th percentile. A single pixel's maximum is
    reported too but not limited: bf16 moves an outline in the mouth by a pixel, which is a large
    difference on a small area and invisible at 25 fps.
    """

    max_mean: float = 1.0
    max_p99: float = 16.0


TOLERANCE = Tolerance()


def frame_difference(ref: list[np.ndarray], other: list[np.ndarray]) -> dict[str, float]:
    """Per-frame |a - b| statistics over two equally long frame lists, worst frame reported."""
    if len(ref) != len(other) or not ref:
        raise ValueError(f"parity needs equally many frames; got {len(ref)} and {len(other)}")
    means, p99s, maxes = [], [], []
    for a, b in zip(ref, other):
        d = np.abs(a.astype(np.int16) - b.astype(np.int16))
        means.append(float(d.mean()))
        p99s.append(float(np.percentile(d, 99)))
        maxes.append(int(d.max()))
    return {"frames": len(ref), "mean": max(means), "p99": max(p99s), "max": max(maxes),
            "mean_all": float(np.mean(means))}


def run_frames(stream: "AvatarStream", image: np.ndarray, pcm: np.ndarray, identity=None) -> list[np.ndarray]:
    stream.start(image, identity=identity)
    frames = stream.push_audio(pcm)
    return frames + stream.flush()


def within(diff: dict[str, float], tol: Tolerance = TOLERANCE) -> bool:
    return diff["mean"] <= tol.max_mean and diff["p99"] <= tol.max_p99


def parity(card, variants: list[Variant], image: np.ndarray, pcm: np.ndarray,
           make: Callable[[Any, Variant], "AvatarStream"] = open_variant_stream,
           streams: dict[str, "AvatarStream"] | None = None, identity=None) -> dict[str, dict[str, float]]:
    """Frame differences of each variant from float32 eager on the same input (`identity`: the cartoon
    avatar's rig, so its frames are drawn the way a library cartoon's are).

    streams: already built streams by variant name (built with `make` and added when missing), so
    a caller can time the very streams it checked (a compiled variant compiles once).
    """
    streams = streams if streams is not None else {}
    for v in [REFERENCE, *variants]:
        if v.name not in streams:
            streams[v.name] = make(card, v)
    reference = run_frames(streams[REFERENCE.name], image, pcm, identity)
    out = {}
    for v in variants:
        diff = {"frames": len(reference), "mean": 0.0, "p99": 0.0, "max": 0, "mean_all": 0.0} if v == REFERENCE \
            else frame_difference(reference, run_frames(streams[v.name], image, pcm, identity))
        out[v.name] = {**diff, "ok": within(diff)}
    return out


# -- cost ------------------------------------------------------------------------------------------------
def step_gflop(stream: "AvatarStream") -> float:
    """Model GFLOP of one steady-state step (window + cache update) of a started stream, from the config."""
    from engine.flops import step_flops, steady_calls
    cfg = stream.model.cfg if hasattr(stream.model, "cfg") else stream.card.model
    gh, gw = cfg.patch_size[1], cfg.patch_size[2]
    h, w = stream.sampler.ref.shape[-2:]
    return step_flops(cfg, steady_calls(stream.stream_config, "cached"), (h // gh) * (w // gw)) / 1e9


def counted_gflop(fn: Callable[[], Any]) -> float:
    """GFLOP that PyTorch's FLOP counter sees in `fn()` (matrix products, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


class BlockClock:
    """Feeds one stream one block of audio at a time from a looped clip and times each push."""

    def __init__(self, stream: "AvatarStream", image: np.ndarray, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE,
                 identity=None):
        self.stream = stream
        self.n = int(round(stream.block_seconds * sample_rate))
        self.pcm = np.tile(pcm, 2)
        self.pos = 0
        stream.start(image, identity=identity)

    def push(self) -> tuple[float, int]:
        import time
        if self.pos + self.n > len(self.pcm) // 2 + self.n:
            self.pos = 0
        chunk = self.pcm[self.pos:self.pos + self.n]
        self.pos += self.n
        t0 = time.perf_counter()
        frames = self.stream.push_audio(chunk)
        return (time.perf_counter() - t0) * 1e3, len(frames)

    def warm(self, blocks: int) -> None:
        for _ in range(blocks):
            self.push()


def time_blocks(clocks: dict[str, BlockClock], rounds: int) -> dict[str, list[float]]:
    """ms per block (features + step + decode) of each stream, stepped in turn with a rotating order."""
    names = list(clocks)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            ms, frames = clocks[name].push()
            if frames:
                out[name].append(ms)
    return out


def warm_stream(stream: "AvatarStream", image: np.ndarray, extra_blocks: int = 2, identity=None) -> None:
    """Run silence through a stream until its steady-state calls have run (compiled) once; start() again after."""
    stream.start(image, identity=identity)
    n = int(round(stream.block_seconds * SAMPLE_RATE))
    for _ in range(stream.sampler.latency_blocks + extra_blocks):
        stream.push_audio(np.zeros(n, np.float32))
    stream.flush()

"""engine.device / engine.dtype / engine.backend turned into what the stream runs on, or one clear error.

Why here and not in the engine: the choice depends on the user's settings and on what this install
can do (a CPU-only PyTorch, no torch-tensorrt), and an impossible choice must be refused before the
model loads, in one line that says how to fix it. `auto` means: the GPU when this PyTorch sees one,
else the CPU; bfloat16 eager on the GPU; on the CPU the variant measured fastest here that keeps the
frames within tolerance of float32 eager (`avatarcam.tuning`, resolved by `resolve_tuned` once the
model is known). An explicit engine.dtype / engine.backend is used as given.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from .config import EngineSettings
from .errors import ConfigError

DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


@dataclass(frozen=True)
class EngineChoice:
    device: str        # "cpu" | "cuda" | "cuda:N"
    dtype: str         # "float32" | "float16" | "bfloat16" ("auto" on the CPU until resolve_tuned)
    backend: str       # "eager" | "compile" | "tensorrt" ("auto" on the CPU until resolve_tuned)
    tuned: str = ""    # how the CPU variant was chosen ("measured ...", "set by engine.backend")

    @property
    def torch_dtype(self):
        import torch
        return getattr(torch, self.dtype)

    def describe(self) -> str:
        return f"{self.device} {self.dtype} {self.backend}"


def _no_cuda_reason() -> str:
    import torch
    if torch.version.cuda is None:
        return f"this PyTorch ({torch.__version__}) is built for the CPU only"
    return "PyTorch sees no NVIDIA GPU (check `nvidia-smi`)"


def choose_engine(engine: EngineSettings, device: str | None = None) -> EngineChoice:
    """The device, dtype and backend to use; ``device`` (the --device flag) wins over engine.device."""
    import torch
    want = (device or engine.device or "auto").strip().lower()
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    elif want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"engine.device={want} but {_no_cuda_reason()}; use engine.device=cpu (or auto), or "
                              "install the CUDA build of PyTorch (installers/linux/install.sh does on a GPU machine)")
    elif want != "cpu":
        raise ConfigError(f"engine.device: '{want}' is not a device here; use auto, cpu or cuda")
    on_gpu = want.startswith("cuda")
    dtype = engine.dtype if engine.dtype != "auto" else ("bfloat16" if on_gpu else "auto")
    if dtype == "float16" and not on_gpu:
        raise ConfigError("engine.dtype=float16 runs only on a GPU; on the CPU use float32 or bfloat16")
    backend = engine.backend if engine.backend != "auto" else ("eager" if on_gpu else "auto")
    if backend == "tensorrt":
        if not on_gpu:
            raise ConfigError("engine.backend=tensorrt needs an NVIDIA GPU (engine.device=cuda); on the CPU use "
                              "engine.backend=eager or compile")
        if importlib.util.find_spec("torch_tensorrt") is None:
            raise ConfigError("engine.backend=tensorrt but torch-tensorrt is not installed: pip install "
                              "'avatarcam[gpu]', or use engine.backend=compile")
    return EngineChoice(want, DTYPES.get(dtype, dtype), backend)


def resolve_tuned(choice: EngineChoice, folder, say=None, stream_overrides: dict | None = None) -> EngineChoice:
    """Fill a CPU choice's `auto` dtype/backend from the measured choice (measuring it on first use).

    With one axis set by the user, the fastest measured variant on the other axis is taken; with
    both set there is nothing to measure.
    """
    if choice.dtype != "auto" and choice.backend != "auto":
        return choice
    from . import tuning
    tuned = tuning.load_choice(folder) or tuning.tune(folder, say=say or (lambda _m: None),
                                                       overrides=stream_overrides)

    def allowed(variant: str) -> bool:
        backend, dtype = variant.split("/")
        return backend in ("eager", "compile", "int8") and choice.backend in ("auto", backend) \
            and choice.dtype in ("auto", dtype)

    variant = tuning.pick(tuned.ms_per_block, tuned.parity, allowed) if tuned.ms_per_block else tuned.variant
    backend, dtype = variant.split("/")
    if not allowed(variant):       # nothing measured fits the user's axis: their value, float32 for the other
        backend = choice.backend if choice.backend != "auto" else "eager"
        dtype = choice.dtype if choice.dtype != "auto" else "float32"
    return EngineChoice(choice.device, dtype, backend, tuned=tuned.describe())

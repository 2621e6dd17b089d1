"""Open the engine a session streams with: device and variant chosen, model loaded, backend applied.

Why apart from the session: loading is the one slow, failure-prone step of a start (a missing
model, settings the model refuses, a compiler that fails), and it turns engine errors into the
app's typed errors here, once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from .config import Settings
from .engine_choice import EngineChoice
from .errors import ModelError, StreamSettingsError
from .stream_options import SessionOptions, anchor_overrides


@dataclass
class Engine:
    """The loaded stream and how it runs (what `stats.engine` reports)."""

    stream: Any                     # engine.stream.AvatarStream, or the PipelinedStream around it
    choice: EngineChoice
    backend_stats: Any = None       # engine.backends stats: active vs requested backend
    pipelined: bool = False

    def describe(self) -> str:
        bs, e = self.backend_stats, self.choice
        backend = e.backend if bs is None or bs.active == bs.requested else \
            f"{bs.active} ({bs.requested} failed: {bs.reason})"
        return f"{e.device} {e.dtype} {backend}" + (", pipelined on 2 cores" if self.pipelined else "")


def set_threads(threads: int) -> None:
    """Torch CPU threads for the engine: leave a core for capture, pacing and everything else."""
    import torch
    torch.set_num_threads(threads if threads > 0 else max(1, (os.cpu_count() or 2) // 2))


def open_engine(settings: Settings, options: SessionOptions, say: Callable[[str], None]) -> Engine:
    """Load the model for these options; ModelError / StreamSettingsError say what to fix."""
    import torch
    from engine.checkpoints import CheckpointError
    from engine.stream import open_stream

    from .engine_choice import choose_engine, resolve_tuned
    from .models import resolve_model
    set_threads(settings.engine.threads)
    overrides = {**anchor_overrides(settings.anchors), **options.stream_overrides}
    choice = choose_engine(settings.engine, options.device)
    try:
        folder = resolve_model(options.model or settings.engine.model)
        choice = resolve_tuned(choice, folder, say=say, stream_overrides=overrides)
        # on the CPU the stream loads in float32 and engine.accel converts what the variant needs
        dtype = choice.torch_dtype if choice.device != "cpu" else torch.float32
        stream = open_stream(folder, device=choice.device, dtype=dtype, seed=options.seed,
                             vad=settings.audio.vad, **overrides)
        engine = Engine(stream, choice, backend_stats=_apply_backend(stream, choice))
        _pipeline(engine)
    except CheckpointError as exc:
        raise ModelError(str(exc)) from exc
    except ValueError as exc:
        raise StreamSettingsError(f"invalid anchor/stream settings: {exc}") from exc
    return engine


def _apply_backend(stream, choice: EngineChoice):
    """engine.backend: eager as loaded, or the DiT wrapped by engine.backends (torch.compile; TensorRT
    on a GPU). A compiler that fails at run time falls back to eager and says so (the stats)."""
    if choice.device == "cpu":      # DiT and decoder follow the variant (engine.accel)
        from engine.accel import Variant, apply_variant
        if choice.backend == "compile":   # compiled code kept between runs, beside the settings
            from .avatars import data_dir
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(data_dir() / "engine" / "inductor"))
        return apply_variant(stream, Variant(choice.backend, choice.dtype)).get("backend_stats")
    if choice.backend == "eager":
        return None
    from engine.backends import compile_model
    wrapped = compile_model(stream.model, choice.backend, dtype=choice.torch_dtype, device=choice.device,
                            stream=stream.stream_config)
    stream.sampler.model = wrapped
    return wrapped.stats


def _pipeline(engine: Engine) -> None:
    """With a second core, the model steps on its own thread while features and decoding run here."""
    from engine.pipeline import PipelinedStream, usable_cores
    engine.pipelined = engine.choice.device == "cpu" and usable_cores() >= 2
    if engine.pipelined:
        engine.stream = PipelinedStream(engine.stream)


def warm(engine: Engine, image, say: Callable[[str], None]) -> None:
    """Compile now, not in the first live seconds."""
    if engine.choice.backend == "compile":
        from engine.accel import warm_stream
        say("preparing the compiled engine (faster once its code is cached on disk)")
        warm_stream(engine.stream, image)

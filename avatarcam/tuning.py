"""The fastest engine variant for this machine and model: measured once, checked, remembered.

Why: which of float32/bfloat16 x eager/torch.compile is fastest depends on the CPU (native bf16 or
not), the kernel libraries and the model, and a variant is only worth having if its frames match
float32 eager's. So the first run that needs it (or `avatarcam bench tune`) measures every
candidate side by side on one core, checks each against float32 eager (engine.accel.TOLERANCE),
and keeps the fastest that passes, keyed by CPU model, instruction sets, ISA limits, library
versions, threads and the model's files. A model too small to matter is not measured.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

CACHE_NAME = "engine-choice.json"
CACHE_FORMAT = 1
SMALL_MODEL_GFLOP = 0.5     # below this per step the model is many times real time in float32 eager anywhere
TUNE_ROUNDS = 12


@dataclass
class TunedChoice:
    variant: str                                  # "compile/bfloat16"
    key: str                                      # cache key (hash of `machine`)
    machine: dict[str, Any] = field(default_factory=dict)
    ms_per_block: dict[str, float] = field(default_factory=dict)
    parity: dict[str, dict] = field(default_factory=dict)
    block_ms: float = 80.0                        # audio per block: real-time factor = block_ms / ms_per_block
    created: str = ""
    reason: str = ""                              # "measured" or why nothing was measured

    @property
    def backend(self) -> str:
        return self.variant.split("/")[0]

    @property
    def dtype(self) -> str:
        return self.variant.split("/")[1]

    def realtime_factor(self, variant: str | None = None) -> float | None:
        ms = self.ms_per_block.get(variant or self.variant)
        return self.block_ms / ms if ms else None

    def describe(self) -> str:
        rtf = self.realtime_factor()
        ref = self.realtime_factor("eager/float32")
        if rtf is None:
            return f"{self.variant} ({self.reason})"
        base = f"; float32 eager {ref:.2f}x" if ref and self.variant != "eager/float32" else ""
        return f"{self.variant}: {rtf:.2f}x real time on {self.machine.get('threads', 1)} thread(s){base} " \
               f"({self.reason}, {self.created})"


def cache_path() -> Path:
    from .avatars import data_dir
    return data_dir() / "engine" / CACHE_NAME


def model_fingerprint(folder: Path) -> str:
    """The card's files by name, size and modification time (its checksums.yaml lists them)."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*")):
        if path.is_file():
            st = path.stat()
            digest.update(f"{path.name}:{st.st_size}:{int(st.st_mtime)};".encode())
    return digest.hexdigest()[:16]


def cache_key(folder: Path, extra: dict | None = None) -> tuple[str, dict]:
    from engine.accel import machine_key
    machine = machine_key({"model": Path(folder).name, "model_files": model_fingerprint(folder), **(extra or {})})
    blob = json.dumps({"format": CACHE_FORMAT, **machine}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24], machine


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def load_choice(folder: Path) -> TunedChoice | None:
    key, _ = cache_key(folder)
    entry = _read(cache_path()).get(key)
    if not entry:
        return None
    try:
        return TunedChoice(**entry)
    except TypeError:
        return None


def save_choice(choice: TunedChoice) -> Path:
    from engine.files import atomic_write_text
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _read(path)
    data[choice.key] = asdict(choice)
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n", mode=0o644)


def pick(ms_per_block: dict[str, float], parity: dict[str, dict], allowed: Callable[[str], bool] = lambda v: True) -> str:
    """The fastest variant that passed parity (float32 eager always passes: it is the reference)."""
    ok = [v for v, ms in ms_per_block.items() if parity.get(v, {}).get("ok") and allowed(v)]
    return min(ok, key=lambda v: ms_per_block[v]) if ok else "eager/float32"


def tune(folder: Path, say: Callable[[str], None] = log.info, rounds: int = TUNE_ROUNDS,
         overrides: dict | None = None, compile: bool = False) -> TunedChoice:
    """Measure the candidates for this model here, check parity, save and return the choice.

    compile: also the torch.compile variants (minutes of compiling: `avatarcam bench tune`). The
    first `run` measures the others only (eager and int8: seconds), so a first start never waits on a compiler.
    """
    import numpy as np
    import torch
    from engine.accel import (REFERENCE, BlockClock, candidates, open_variant_stream, parity, step_gflop,
                              time_blocks, warm_stream)
    from engine.card import load_card

    from .demo import demo_identity, demo_portrait, demo_voice
    card = load_card(Path(folder))
    key, machine = cache_key(folder)
    created = time.strftime("%Y-%m-%d %H:%M")
    overrides = overrides or {}
    probe = open_variant_stream(card, REFERENCE, **overrides)
    image, identity = demo_portrait(max(card.width, card.height)), demo_identity()   # a library cartoon: its rig draws
    probe.start(image, identity=identity)
    gflop = step_gflop(probe)
    block_ms = probe.block_seconds * 1000
    if gflop < SMALL_MODEL_GFLOP:
        choice = TunedChoice("eager/float32", key, machine, block_ms=block_ms, created=created,
                             reason=f"not measured: {gflop:.2f} GFLOP per step is small enough for float32 eager")
        save_choice(choice)
        return choice
    variants = [v for v in candidates() if compile or v.backend != "compile"]
    say(f"choosing the fastest engine for this CPU (once per machine and model): "
        f"{', '.join(v.name for v in variants)}")
    streams = {}
    for v in variants:
        t0 = time.perf_counter()
        streams[v.name] = open_variant_stream(card, v, **overrides)
        warm_stream(streams[v.name], image, identity=identity)   # compile/* compile here (cached on disk after)
        say(f"  {v.name}: ready in {time.perf_counter() - t0:.0f} s")
    checked = parity(card, variants, image, demo_voice(1.0), streams=streams, identity=identity)
    for name, diff in checked.items():
        if not diff["ok"]:
            say(f"  {name} changes frames beyond the tolerance (worst frame mean {diff['mean']:.2f}, "
                f"p99 {diff['p99']:.0f} levels): not used")
    voice = demo_voice(4.0)
    clocks = {}
    for v in variants:
        if checked[v.name]["ok"]:
            clocks[v.name] = BlockClock(streams[v.name], image, voice, identity=identity)
            clocks[v.name].warm(probe.sampler.latency_blocks + 3)
    times = time_blocks(clocks, rounds)
    ms = {name: float(np.median(t)) for name, t in times.items() if t}
    best = pick(ms, checked)
    reason = "measured" if compile else "measured (no compiled variants; `avatarcam bench tune` adds torch.compile)"
    choice = TunedChoice(best, key, machine, ms, checked, block_ms, created, reason)
    save_choice(choice)
    torch.set_num_threads(machine["threads"])
    say(f"engine: {choice.describe()}")
    return choice

"""Loading weights: ours (safetensors) and the authors' `model.pt`. The card around them: `engine.card`.

Never unpickles code: the official file is read with `torch.load(weights_only=True)`. Foreign keys
are mapped in one place (prefixes stripped, LoRA merged) and checked against the model loudly:
every missing, unexpected or mis-shaped key is listed in a single error.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .files import atomic_write
from .model import CausalDiT

log = logging.getLogger(__name__)

WRAPPER_SEGMENTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
LORA_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")


class CheckpointError(ValueError):
    """A checkpoint that does not fit the architecture; the message lists every mismatch."""


def normalise_key(key: str) -> str:
    for seg in WRAPPER_SEGMENTS:
        key = key.replace(seg, "")
    return key[len("model."):] if key.startswith("model.") else key


def merge_lora(state: dict[str, torch.Tensor], alpha: float = 64.0) -> dict[str, torch.Tensor]:
    """Fold PEFT LoRA adapters into their base weights: W + (alpha / rank) * B @ A."""
    out: dict[str, torch.Tensor] = {}
    merged = 0
    for key, value in state.items():
        if ".lora_A." in key or ".lora_B." in key:
            continue
        if ".base_layer." in key:
            prefix, leaf = key.split(".base_layer.")
            if leaf == "weight" and f"{prefix}.lora_A.default.weight" in state:
                a = state[f"{prefix}.lora_A.default.weight"].float()
                b = state[f"{prefix}.lora_B.default.weight"].float()
                value = (value.float() + (alpha / a.shape[0]) * (b @ a)).to(value.dtype)
                merged += 1
            key = f"{prefix}.{leaf}"
        out[key] = value
    orphans = [k for k in state if ".lora_A." in k and k.replace(".lora_A.default.weight", ".base_layer.weight") not in state]
    if orphans:
        raise CheckpointError(f"LoRA adapters without a base layer: {orphans[:5]}")
    log.info("merged %d LoRA adapters (alpha %.1f)", merged, alpha)
    return out


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str = "checkpoint") -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(f"{k}: expected {expected[k]}, got {tuple(state[k].shape)}"
                       for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unexpected or misshaped:
        def show(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f" ... (+{len(items) - 8} more)" if len(items) > 8 else "")
        lines = [f"{what} does not match this architecture ({len(expected)} tensors expected):"]
        if missing:
            lines.append(f"  missing {len(missing)}: {show(missing)}")
        if unexpected:
            lines.append(f"  unexpected {len(unexpected)}: {show(unexpected)}")
        if misshaped:
            lines.append(f"  wrong shape {len(misshaped)}: {show(misshaped)}")
        lines.append("  Is this checkpoint for another model size? Check the model card's `model:` section.")
        raise CheckpointError("\n".join(lines))


def read_official_checkpoint(path: str | Path, use_ema: bool = False, lora_alpha: float = 64.0) -> dict[str, torch.Tensor]:
    """The authors' `model.pt`: pick generator / generator_ema, strip wrapper prefixes, merge LoRA."""
    import zipfile
    if not zipfile.is_zipfile(path):   # torch.save writes a zip; torch's own error would advise about mmap
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (torch.save writes a zip archive; this file is "
                              "not one): is it the right file, and completely downloaded?")
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # a pickle with code in it, or a damaged archive
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in reason:
            reason = "it holds pickled Python objects besides tensors (refused: loading them could run code)"
        raise CheckpointError(f"cannot read {path} as a weights-only torch checkpoint: {reason[:300]}") from exc
    entry = "generator_ema" if use_ema else "generator"
    if isinstance(raw, dict) and entry in raw:
        raw = raw[entry]
    elif isinstance(raw, dict) and any(k in raw for k in ("generator", "generator_ema")):
        raise CheckpointError(f"{path} has no '{entry}' entry; it has {sorted(raw)}")
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{path} is not a state dict (expected a dict of tensors, possibly under 'generator')")
    state = {normalise_key(k): v for k, v in raw.items()}
    return merge_lora(state, lora_alpha)


def load_weights(model: CausalDiT, path: str | Path, **official: Any) -> CausalDiT:
    """Load .safetensors (ours) or .pt/.pth (official) into the model, strictly."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except Exception as exc:  # truncated, bit-flipped header, not safetensors at all
            raise CheckpointError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc}); "
                                  "reinstall or re-import the model") from exc
    else:
        state = read_official_checkpoint(path, **official)
    check_state_dict(model, state, what=str(path))
    model.load_state_dict(state, strict=True, assign=any(p.is_meta for p in model.parameters()))
    return model


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(Path(path), lambda tmp: save_file(state, tmp), mode=0o644)   # shipped: readable by all

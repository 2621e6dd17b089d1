"""Loading weights: ours (safetensors + a YAML card) and the authors' `model.pt`.

Never unpickles code: the official file is read with `torch.load(weights_only=True)`. Foreign keys
are mapped in one place (prefixes stripped, LoRA merged) and checked against the model loudly:
every missing, unexpected or mis-shaped key is listed in a single error.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from .config import ModelConfig, StreamConfig, from_dict, to_dict
from .files import atomic_write, atomic_write_text
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


@dataclass
class ModelCard:
    """A model folder: architecture, stream settings, audio/decoder choices and where the weights are."""

    name: str
    model: ModelConfig
    stream: StreamConfig
    weights: str = "model.safetensors"
    fps: float = 25.0
    width: int = 256
    height: int = 256
    video_frames_per_latent: int = 1
    audio: dict = field(default_factory=lambda: {"encoder": "logmel"})
    decoder: dict = field(default_factory=lambda: {"kind": "toon"})
    description: str = ""
    root: Path = Path(".")

    def path(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    def build(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
              load: bool = True) -> CausalDiT:
        model = CausalDiT(self.model)
        if load:
            self.check_files()
            load_weights(model, self.path(self.weights))
        return model.to(device=device, dtype=dtype).eval()

    def check_files(self, deep: bool = False) -> None:
        """Raise CheckpointError (one line per damaged file) unless the card's files match its checksums."""
        from .checksums import check_checksums
        problems = check_checksums(self.root, deep=deep)
        if len(problems) == 1:
            raise CheckpointError(f"model '{self.name}': {problems[0]}")
        if problems:
            raise CheckpointError(f"model '{self.name}': {len(problems)} damaged files\n" +
                                  "\n".join(f"  - {p}" for p in problems))

    def to_yaml(self) -> str:
        data = {"name": self.name, "description": self.description, "weights": self.weights, "fps": self.fps,
                "width": self.width, "height": self.height,
                "video_frames_per_latent": self.video_frames_per_latent,
                "model": to_dict(self.model), "stream": to_dict(self.stream), "audio": self.audio,
                "decoder": self.decoder}
        return yaml.safe_dump(data, sort_keys=False)


def load_card(folder: str | Path) -> ModelCard:
    folder = Path(folder)
    card_file = folder / "model.yaml" if folder.is_dir() else folder
    if not card_file.exists():
        raise CheckpointError(f"no model card at {card_file} (a model folder holds model.yaml + weights)")
    try:
        data = yaml.safe_load(card_file.read_text()) or {}
        data["model"] = from_dict(ModelConfig, data.get("model", {}))
        data["stream"] = from_dict(StreamConfig, data.get("stream", {}))
        return ModelCard(**data, root=card_file.parent)
    except (TypeError, ValueError, yaml.YAMLError) as exc:
        raise CheckpointError(f"invalid model card {card_file}: {exc}") from exc


def save_card(card: ModelCard, folder: str | Path, model: torch.nn.Module | None = None) -> Path:
    folder = Path(folder)
    if model is not None:
        save_weights(model, folder / card.weights)
    text = card.to_yaml()
    atomic_write_text(folder / "model.yaml", text, mode=0o644)
    write_card_checksums(folder)
    return folder


def write_card_checksums(folder: str | Path) -> Path:
    """(Re)write the size + sha256 list of a card folder's files (``avatarcam models checksum FOLDER``):
    called by save_card, so every card the training pipeline or an import writes carries one."""
    from .checksums import write_checksums
    return write_checksums(folder)

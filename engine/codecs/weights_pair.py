"""A small network on disk: `<name>.safetensors` (weights) beside `<name>.yaml` (its config dataclass).

Why one place: the autoencoder and the reference decoder are saved, shipped in the card and
loaded the same way (atomic writes readable by all, one error naming both files when either is
missing or they do not match).
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from engine.files import atomic_write, atomic_write_text


def save_pair(module: nn.Module, config: dict, path: str | os.PathLike, fmt: str) -> Path:
    """Write the module's weights and `config`, each atomically, mode 0644; returns the .safetensors path."""
    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"format": fmt}), mode=0o644)
    os.chmod(path, 0o644)  # safetensors re-creates the temp file as 0600, undoing the mode above
    atomic_write_text(path.with_suffix(".yaml"), yaml.safe_dump(config, sort_keys=False), mode=0o644)
    return path


def read_config(path: str | os.PathLike, what: str) -> tuple[Path, dict]:
    """(.safetensors path, the config dict) or FileNotFoundError naming both files."""
    path = Path(path).with_suffix(".safetensors")
    card = path.with_suffix(".yaml")
    if not path.is_file() or not card.is_file():
        raise FileNotFoundError(f"{what}: expected {path} and {card}")
    return path, yaml.safe_load(card.read_text()) or {}


def load_weights(module: nn.Module, path: Path, what: str, map_location: str = "cpu") -> nn.Module:
    """Load `path` into `module` (strict, with one error listing what does not match); eval mode."""
    missing, unexpected = module.load_state_dict(load_file(str(path), device=map_location), strict=False)
    if missing or unexpected:
        raise ValueError(f"{what} {path}: weights do not match {path.with_suffix('.yaml')} "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return module.eval()




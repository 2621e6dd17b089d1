"""`avatarcam models list | checksum`: the model library (shipped cards + imported ones).

Shipped models live in the package (`engine/models/<name>`); imported ones in the user's data dir
(`$AVATARCAM_HOME/models` or `platformdirs.user_data_dir('avatarcam')/models`). The functions
here return data; `format_list` turns it into the text the CLI prints. Errors are `ModelError`.
Importing and verifying (the tools behind `models import | verify`) are in `model_import.py`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

log = logging.getLogger(__name__)


def models_dir() -> Path:
    """Where imported models go: ``$AVATARCAM_HOME/models`` if set, else the platform data dir."""
    home = os.environ.get("AVATARCAM_HOME", "").strip()
    if home:
        return Path(home).expanduser() / "models"
    import platformdirs
    return Path(platformdirs.user_data_dir("avatarcam")) / "models"


def shipped_dir() -> Path:
    from engine.card import MODELS_DIR
    return MODELS_DIR


@dataclass
class ModelEntry:
    name: str
    source: str            # "shipped" | "imported"
    path: Path
    description: str = ""
    size: str = ""         # "832x480 @ 25 fps"
    error: str = ""        # why the card could not be read


def _entry(folder: Path, source: str) -> ModelEntry:
    from engine.card import load_card
    from engine.checkpoints import CheckpointError
    try:
        card = load_card(folder)
    except CheckpointError as exc:
        return ModelEntry(folder.name, source, folder, error=str(exc).splitlines()[0])
    return ModelEntry(card.name, source, folder, card.description,
                      f"{card.width}x{card.height} @ {card.fps:g} fps")


def list_models(imported_root: Path | None = None, shipped_root: Path | None = None) -> list[ModelEntry]:
    """Every model card: shipped first, then imported, each sorted by folder name."""
    out: list[ModelEntry] = []
    for source, root in (("shipped", shipped_root or shipped_dir()), ("imported", imported_root or models_dir())):
        if root.is_dir():
            out += [_entry(p, source) for p in sorted(root.iterdir()) if (p / "model.yaml").is_file()]
    return out


def locate_model(name: str, imported_root: Path | None = None,
                 shipped_root: Path | None = None) -> tuple[Path, str]:
    """Where a model name points: (folder, "path" | "imported" | "shipped"); the folder may not exist.

    A path (or anything holding model.yaml) is taken as it is; a bare name is looked up among the
    imported models first, then the shipped ones.
    """
    text = str(name).strip()
    candidate = Path(text).expanduser()
    if (candidate / "model.yaml").is_file() or (candidate.is_file() and candidate.name == "model.yaml") \
            or candidate.is_absolute() or "/" in text or "\\" in text or text.startswith((".", "~")):
        return candidate, "path"
    shipped = (shipped_root or shipped_dir()) / text
    for source, root in (("imported", imported_root or models_dir()), ("shipped", shipped.parent)):
        if (root / text / "model.yaml").is_file():
            return root / text, source
    return shipped, "shipped"


def resolve_model(name: str, imported_root: Path | None = None) -> Path:
    """A model folder by name (imported wins over shipped) or by path; ModelError if there is none."""
    folder, _ = locate_model(name, imported_root)
    if (folder / "model.yaml").is_file() or (folder.is_file() and folder.name == "model.yaml"):
        return folder
    known = sorted({e.name for e in list_models(imported_root)})
    raise ModelError(f"model '{name}' not found: give a model folder (with model.yaml) or one of: "
                     f"{', '.join(known) or 'none'} (import the paper model with `avatarcam models import`)")


def write_model_checksums(name: str, imported_root: Path | None = None) -> str:
    """Rewrite a card folder's checksums.yaml from its files as they are now; returns what was done."""
    import time
    from engine.card import write_card_checksums
    from engine.checksums import listed_files
    folder = resolve_model(name, imported_root)
    folder = folder.parent if folder.is_file() else folder
    t0 = time.perf_counter()
    try:
        path = write_card_checksums(folder)
    except OSError as exc:
        raise ModelError(f"cannot write the checksums of {folder}: {exc.strerror or exc}") from exc
    files = listed_files(folder)
    size = sum(p.stat().st_size for p in files)
    return (f"wrote {path}: {len(files)} files, {size / 1e6:.1f} MB hashed in "
            f"{time.perf_counter() - t0:.2f} s")


# -- text for the CLI -------------------------------------------------------------------------------
def format_list(entries: list[ModelEntry]) -> str:
    if not entries:
        return "no models"
    width = max(len(e.name) for e in entries)
    lines = []
    for e in entries:
        detail = f"UNREADABLE: {e.error}" if e.error else f"{e.size}  {e.description}".strip()
        lines.append(f"{e.name:<{width}}  {e.source:<8}  {detail}  [{e.path}]")
    return "\n".join(lines)

"""`avatarcam models import | verify`: the paper model's downloads into a card, and any card re-checked.

Apart from `models.py` (the library the stream resolves models in) because these run the engine's
import tools (`engine.tools.paper_import`), which the streaming path never loads.
"""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError, ModelError
from .models import models_dir, resolve_model


def import_model(dit: str, wan: str, wav2vec: str, name: str | None = None, copy: bool = False,
                 config: str = "paper", t5: str | None = None, imported_root: Path | None = None):
    """Verify the downloads and write a card; returns (folder, report). ModelError lists every problem."""
    from engine.checkpoints import CheckpointError
    from engine.tools.paper_import import PRESETS, PaperFiles, import_paper
    if config not in PRESETS:
        raise ConfigError(f"--config must be one of {', '.join(sorted(PRESETS))}; got '{config}'")
    files = PaperFiles(dit=Path(dit), wan_dir=Path(wan), wav2vec_dir=Path(wav2vec), t5_dir=Path(t5) if t5 else None)
    try:
        return import_paper(files, imported_root or models_dir(), name=name, preset=config, copy=copy)
    except CheckpointError as exc:
        raise ModelError(str(exc)) from exc
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def verify_model(name: str, imported_root: Path | None = None):
    """Re-check a card's files; returns the report (report.ok tells the outcome)."""
    from engine.tools.paper_import import verify_card
    return verify_card(resolve_model(name, imported_root))


def format_report(report, title: str) -> str:
    verdict = "OK" if report.ok else "FAILED"
    return f"{title}: {verdict}\n{report.text()}"

"""Evaluation results as committed JSON: plain Python values, paths relative to the repository.

Why: the JSON beside each report is read by people and diffed between runs, so it holds no NaN
(null instead), no numpy types and no machine's absolute paths.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from engine.files import atomic_write_text

REPO = Path(__file__).resolve().parents[2]


def portable(path: str | Path) -> str:
    """A path for the committed JSON: relative to the repository when inside it (no machine's paths)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def clean(obj):
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) or math.isinf(float(obj)) else round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(result: dict, path: str | Path) -> None:
    atomic_write_text(Path(path), json.dumps(result, indent=1) + "\n", mode=0o644)

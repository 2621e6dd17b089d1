"""Lip-sync measures every evaluation section shares: correlation over lags, and the mouth in silence.

The ground truth is the mouth_open track the renderer was driven with; the measured signal is the
mouth probe's reading of the generated frames. Lag k > 0 means generated frame t + k matches
ground-truth frame t, i.e. the video's mouth is k frames LATE relative to the audio (k < 0: early).
"""
from __future__ import annotations

import math

import numpy as np

SILENT_LEVEL = 0.02      # ground-truth mouth_open below this counts as silent
SILENT_RUN = 8           # ... for at least this many frames
SILENT_TRIM = 2          # frames dropped at each end of a silent stretch (closing / opening motion)
CLOSED_TARGET = 0.1      # mean probe openness in silence at or below this: "mouth closed"


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def lag_correlations(pairs: list[tuple[np.ndarray, np.ndarray]], max_lag: int) -> dict[int, float]:
    """Pearson r of (truth[t], generated[t + k]) pooled over all sequences, for k in -max_lag..max_lag."""
    out = {}
    for k in range(-max_lag, max_lag + 1):
        xs, ys = [], []
        for truth, gen in pairs:
            n = min(len(truth), len(gen))
            if n - abs(k) < 3:
                continue
            if k >= 0:
                xs.append(truth[: n - k]), ys.append(gen[k:n])
            else:
                xs.append(truth[-k:n]), ys.append(gen[: n + k])
        out[k] = pearson(np.concatenate(xs), np.concatenate(ys)) if xs else float("nan")
    return out


def best_lag(pairs: list[tuple[np.ndarray, np.ndarray]], max_lag: int) -> dict:
    """Lag (frames; > 0 = video late) with the highest correlation, r there and at lag 0, r over every lag."""
    rs = lag_correlations(pairs, max_lag)
    finite = {k: r for k, r in rs.items() if not math.isnan(r)}
    lag = max(finite, key=lambda k: (finite[k], -abs(k))) if finite else 0
    return {"best_lag": int(lag), "r_best": finite.get(lag, float("nan")), "r_lag0": rs.get(0, float("nan")),
            "lags": list(rs), "r_by_lag": [rs[k] for k in rs]}


def silent_mask(truth: np.ndarray, level: float = SILENT_LEVEL, min_run: int = SILENT_RUN,
                trim: int = SILENT_TRIM) -> np.ndarray:
    """Frames inside silent stretches (truth < level for >= min_run frames), `trim` frames off each end."""
    quiet = np.asarray(truth) < level
    mask = np.zeros(len(quiet), bool)
    start = None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= min_run:
                mask[start + trim: i - trim] = True
            start = None
    return mask


def silence_stats(truth: np.ndarray, opened: np.ndarray) -> dict:
    """Probe openness in silent stretches vs speaking frames."""
    silent = silent_mask(truth)
    speaking = np.asarray(truth) >= SILENT_LEVEL
    def mean(m):
        return float(opened[m].mean()) if m.any() else float("nan")
    return {"silent_frames": int(silent.sum()), "speaking_frames": int(speaking.sum()),
            "silent_mean_open": mean(silent), "speaking_mean_open": mean(speaking),
            "silent_closed_fraction": float((opened[silent] < CLOSED_TARGET).mean()) if silent.any() else float("nan")}

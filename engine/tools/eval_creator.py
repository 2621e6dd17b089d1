"""Creator-made avatars in the evaluation: combinations of controls no single seed draws.

Why: the creator lets a user mix any face with any hair, clothes and background (a green screen
too), so the evaluation streams a few such mixes (`engine.toon.creator.sample_creator`) beside the
seed avatars and reports the same picture measures and the mouth's openness in speech and silence.
"""
from __future__ import annotations

import numpy as np


def creator_section(results: dict, seeds: list[int], truth: np.ndarray, fps: float, silent_mask) -> dict:
    """Per creator avatar: the picture measures (engine.tools.eval_picture) and openness in speech vs silence."""
    from engine.tools.eval_picture import picture_summary
    from engine.toon.creator import sample_creator

    per = {}
    for s in seeds:
        rec = results[f"creator:{s}"]
        n = rec["frames"]
        silent = silent_mask(truth[:n])
        summary = picture_summary(rec, silent, fps, rec["portrait_eye_edge"])
        opened = np.asarray(rec["open"][:n], np.float64)
        summary["open_speaking"] = float(np.nanmean(opened[~silent])) if (~silent).any() else None
        summary["open_silent"] = float(np.nanmean(opened[silent])) if silent.any() else None
        ident = sample_creator(s)
        summary["look"] = {"seed": s, "background": ident.background, "hair_style": ident.hair_style,
                           "hat": ident.hat, "glasses": ident.glasses}
        per[f"creator:{s}"] = summary
    return per

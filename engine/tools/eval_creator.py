"""Creator-made avatars in the evaluation: combinations of controls no single seed draws.

Why: the creator lets a user mix any face with any hair, clothes and background (a green screen
too), so the evaluation streams a few such mixes (`engine.toon.creator.sample_creator`) beside the
seed avatars and reports the same picture measures and the mouth's openness in speech and silence.
Beside them, what the mouth probe reads on the mix's own portrait (its mouth drawn shut): the probe
has not seen every mix, and a face it misreads as slightly open reads so in silence too.
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
        summary["open_portrait"] = rec.get("open_portrait")
        ident = sample_creator(s)
        summary["look"] = {"seed": s, "background": ident.background, "hair_style": ident.hair_style,
                           "hat": ident.hat, "glasses": ident.glasses}
        per[f"creator:{s}"] = summary
    return per


def creator_report(per: dict) -> list[str]:
    """The creator mixes' rows for the markdown page."""
    if not per:
        return []
    fmt = lambda v, d=3: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = ["### Creator-made mixes (same speech)", "",
             "| run | background | hair | hat | glasses | PSNR silent (dB) | smear ratio | openness speaking | "
             "openness silent | probe on its shut portrait |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in per.items():
        look = c["look"]
        lines.append(f"| {name} | {look['background']} | {look['hair_style']} | {look['hat']} | {look['glasses']} | "
                     f"{fmt(c['psnr_silence'], 1)} | {fmt(c['smear_ratio'], 2)} | {fmt(c['open_speaking'])} | "
                     f"{fmt(c['open_silent'])} | {fmt(c.get('open_portrait'))} |")
    return lines + ["", "Openness in silence at the probe's reading of the shut portrait is a shut mouth "
                    "(silent frames match the portrait: see PSNR).", ""]

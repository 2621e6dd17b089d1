"""Is this picture one the toon model draws well? Two cheap measures of a flat-shaded cartoon portrait.

Why these two: the toon model only ever saw procedural cartoon portraits (flat colours with
anti-aliased outlines, a face centred in the frame). A photo has hundreds of colours (texture,
noise, shading); a line drawing, a logo or a page of text has few colours but nothing the
autoencoder can redraw. So:

- flatness: the share of pixels (at 512x512) where the picture is locally flat or a smooth
  gradient (sum over RGB of |4-neighbour Laplacian| <= 6). 300 held-out cartoon portraits:
  0.875-0.97; photos 0.16-0.70 (texture and sensor noise are never flat).
- round trip: PSNR (dB) of the picture at 256x256 after the toon autoencoder's encode/decode.
  Training-like portraits: 24.0-28 dB; drawings, silhouettes and text pages 14-23 dB.
- colour: mean max-min channel spread; a grey picture (a black-and-white photo) has ~0.

Thresholds sit below every training-like portrait measured. A picture that fails any of them still streams; the app says, in one sentence, that it is
outside what the default model draws well.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_FLAT = 0.8
MIN_ROUND_TRIP_DB = 23.5
MIN_COLOUR = 8.0


@dataclass(frozen=True)
class DomainFit:
    flatness: float
    round_trip_db: float
    colour: float

    @property
    def ok(self) -> bool:
        return self.flatness >= MIN_FLAT and self.round_trip_db >= MIN_ROUND_TRIP_DB and self.colour >= MIN_COLOUR

    def reason(self) -> str:
        """Why it fails, in words ('' when it fits)."""
        if self.flatness < MIN_FLAT:
            return (f"it is textured like a photo (only {self.flatness:.0%} of it is flat colour; cartoon "
                    f"portraits are >= {MIN_FLAT:.0%})")
        if self.colour < MIN_COLOUR:
            return "it is black and white; the default model draws colour cartoons"
        if self.round_trip_db < MIN_ROUND_TRIP_DB:
            return (f"the model's encoder redraws it poorly ({self.round_trip_db:.1f} dB; cartoon portraits "
                    f"reach >= {MIN_ROUND_TRIP_DB:g} dB), like a drawing in another style")
        return ""


def flatness(image: np.ndarray) -> float:
    x = np.asarray(image, np.float32)
    lap = np.abs(4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]).sum(-1)
    return float((lap <= 6).mean())


def measure(image: np.ndarray, autoencoder=None) -> DomainFit:
    """uint8 HxWx3 (any size) -> the three measures; `autoencoder` defaults to the shipped toon one."""
    import torch

    from engine.codecs.autoencoder import load_default
    from engine.codecs.decoders import fit_image
    ae = autoencoder or load_default()
    s = ae.cfg.image_size
    small = fit_image(image, s, s)
    with torch.no_grad():
        redrawn = ae.decode(ae.encode(small))[0]
    mse = np.mean((small.astype(np.float64) - redrawn.astype(np.float64)) ** 2)
    db = float(10 * np.log10(255.0**2 / max(mse, 1e-10)))
    big = fit_image(image, 512, 512)
    spread = big.astype(np.int16).max(-1) - big.astype(np.int16).min(-1)
    return DomainFit(flatness(big), db, float(spread.mean()))


def advice(image: np.ndarray, autoencoder=None) -> str | None:
    """One sentence for the user when the picture is outside the default model's domain, else None."""
    fit = measure(image, autoencoder)
    if fit.ok:
        return None
    return (f"This picture is outside what the default model draws well: {fit.reason()}. It will still stream, "
            "but expect a smeared avatar; a cartoon portrait (avatarcam avatars new) looks much better.")

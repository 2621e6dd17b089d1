"""Phonemes (espeak-ng mnemonics with start times) -> smooth mouth-shape tracks per video frame.

Why not loudness: an "oo" and an "ee" are equally loud but look nothing alike, and /m b p/ close
the lips in the middle of speech. Each phoneme gets a viseme (open, width, round); tracks are
sampled at 200 Hz, smoothed with a Gaussian (coarticulation: the mouth starts moving before the
sound, symmetrically), then bilabial closures are re-imposed with a narrower kernel so they
survive the smoothing. Frame j's target is the mean over the interval the frame covers.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

TRACK_RATE = 200  # Hz
Viseme = tuple[float, float, float]  # (open, width, round)

SILENCE: Viseme = (0.0, 0.5, 0.0)
_V = {
    "open": (0.85, 0.6, 0.0), "mid": (0.45, 0.5, 0.0), "front": (0.55, 0.72, 0.0), "close_front": (0.3, 0.92, 0.0),
    "back_round": (0.68, 0.3, 0.7), "close_round": (0.28, 0.12, 1.0),
    "bilabial": (0.0, 0.45, 0.1), "labiodental": (0.08, 0.55, 0.0), "dental": (0.18, 0.55, 0.0),
    "alveolar": (0.14, 0.62, 0.0), "sibilant": (0.08, 0.72, 0.0), "postalveolar": (0.16, 0.3, 0.7),
    "r": (0.15, 0.35, 0.5), "w": (0.1, 0.12, 0.9), "j": (0.15, 0.78, 0.0), "velar": (0.28, 0.5, 0.0),
}
_PHONEME_CLASS = {
    **dict.fromkeys(["a", "a#", "A:", "A", "aa", "a2", "&"], "open"),
    **dict.fromkeys(["@", "@@", "3:", "3", "V", "@L", "@2", "@5", "@-", "a#2"], "mid"),
    **dict.fromkeys(["e", "E", "e:", "E:", "E2"], "front"),
    **dict.fromkeys(["i", "i:", "I", "I#", "I2", "i#"], "close_front"),
    **dict.fromkeys(["0", "O:", "O", "o", "o:", "O2"], "back_round"),
    **dict.fromkeys(["u:", "U", "u", "u#"], "close_round"),
    **dict.fromkeys(["p", "b", "m"], "bilabial"),
    **dict.fromkeys(["f", "v"], "labiodental"),
    **dict.fromkeys(["T", "D"], "dental"),
    **dict.fromkeys(["t", "d", "n", "l", "t#", "d#", "n-", "l/", "L", "?", "t2", "d2"], "alveolar"),
    **dict.fromkeys(["s", "z"], "sibilant"),
    **dict.fromkeys(["S", "Z", "tS", "dZ"], "postalveolar"),
    **dict.fromkeys(["r", "r-", "3:r", "R", "r/"], "r"),
    **dict.fromkeys(["w", "W"], "w"),
    **dict.fromkeys(["j"], "j"),
    **dict.fromkeys(["k", "g", "N", "h", "x", "k#"], "velar"),
}
_DIPHTHONGS = {
    "aI": ("open", "close_front"), "aU": ("open", "close_round"), "eI": ("front", "close_front"),
    "oU": ("back_round", "close_round"), "OI": ("back_round", "close_front"), "e@": ("front", "mid"),
    "i@": ("close_front", "mid"), "U@": ("close_round", "mid"), "A@": ("open", "mid"), "O@": ("back_round", "mid"),
    "aI@": ("open", "mid"), "aU@": ("open", "mid"), "i@3": ("close_front", "mid"), "eI@": ("front", "mid"),
}
_VOWEL_CHARS = set("aeiouAEIOUV03@&")


def is_silence(ph: str) -> bool:
    return ph == "" or ph.startswith("_") or ph in ("||", "|")


def visemes_for(ph: str) -> tuple[Viseme, Viseme]:
    """(first-half, second-half) mouth shape of one phoneme; equal halves except diphthongs."""
    if is_silence(ph):
        return SILENCE, SILENCE
    if ph in _DIPHTHONGS:
        a, b = _DIPHTHONGS[ph]
        return _V[a], _V[b]
    for key in (ph, ph.rstrip(":;"), ph.rstrip("0123456789#:;")):
        if key in _PHONEME_CLASS:
            v = _V[_PHONEME_CLASS[key]]
            return v, v
    v = _V["mid"] if ph[0] in _VOWEL_CHARS else _V["alveolar"]
    return v, v


def gauss_smooth(x: np.ndarray, sigma_s: float) -> np.ndarray:
    sig = sigma_s * TRACK_RATE
    r = int(np.ceil(3 * sig))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sig) ** 2)
    k /= k.sum()
    pad = np.pad(x, ((r, r),) + ((0, 0),) * (x.ndim - 1), mode="edge")
    return np.stack([np.convolve(pad[:, i], k, mode="valid") for i in range(x.shape[1])], 1) if x.ndim == 2 else np.convolve(pad, k, mode="valid")


def mouth_track(phonemes: list[tuple[float, str]], duration: float, coart_s: float = 0.03) -> np.ndarray:
    """(n, 3) open/width/round sampled at TRACK_RATE over [0, duration)."""
    n = int(np.ceil(duration * TRACK_RATE))
    track = np.tile(np.array(SILENCE, np.float32), (n, 1))
    closure = np.zeros(n, np.float32)
    for i, (start, ph) in enumerate(phonemes):
        end = phonemes[i + 1][0] if i + 1 < len(phonemes) else duration
        a, b = int(round(start * TRACK_RATE)), min(n, int(round(end * TRACK_RATE)))
        if b <= a:
            continue
        first, second = visemes_for(ph)
        mid = (a + b) // 2
        track[a:mid] = first
        track[mid:b] = second
        if ph in ("p", "b", "m"):
            closure[a:b] = 1.0
    smooth = gauss_smooth(track, coart_s)
    shut = np.clip(gauss_smooth(closure, coart_s * 0.4) * 1.6, 0, 1)
    smooth[:, 0] *= 1.0 - shut
    return smooth.astype(np.float32)


def frame_means(track: np.ndarray, n_frames: int, fps: float, rate: int = TRACK_RATE) -> np.ndarray:
    """Average a (n, k) track sampled at `rate` over each video frame's interval [j/fps, (j+1)/fps)."""
    out = np.zeros((n_frames,) + track.shape[1:], np.float32)
    for j in range(n_frames):
        a = int(round(j * rate / fps))
        b = max(a + 1, int(round((j + 1) * rate / fps)))
        seg = track[min(a, len(track) - 1):min(b, len(track))] if len(track) else track
        out[j] = seg.mean(0) if len(seg) else (track[-1] if len(track) else 0)
    return out

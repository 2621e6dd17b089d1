"""Sounds that are not speech, synthesised from a seed: what a streamer's microphone also hears.

Why: a model trained on speech over near-silence learns "loud = talk", so music or a keyboard at
speech loudness opens the mouth. Clips mix these under and between the speech while the mouth
target stays shut wherever nobody speaks. Each kind is a small function of (generator, samples)
returning float32 at peak 1; the mixer sets the level. scipy.signal does the filters and sweeps.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import signal

from engine.config import SAMPLE_RATE

SR = SAMPLE_RATE
Maker = Callable[[np.random.Generator, int], np.ndarray]


def _norm(x: np.ndarray) -> np.ndarray:
    peak = float(np.abs(x).max()) if x.size else 0.0
    return (x / peak if peak > 0 else x).astype(np.float32)


def _band(x: np.ndarray, lo: float, hi: float, order: int = 4) -> np.ndarray:
    hi = min(hi, 0.45 * SR)
    sos = signal.butter(order, [lo, hi], btype="bandpass", fs=SR, output="sos")
    return signal.sosfilt(sos, x)


def _env(n: int, attack: int, release: int) -> np.ndarray:
    e = np.ones(n)
    a, r = min(attack, n), min(release, n)
    if a:
        e[:a] = np.linspace(0, 1, a)
    if r:
        e[n - r:] *= np.linspace(1, 0, r)
    return e


def _note(freq: float, n: int, rng: np.random.Generator, harmonics: int = 4,
          decay: tuple[float, float] = (0.2, 4.0)) -> np.ndarray:
    """A pitched note with a random timbre (harmonic weights), gentle vibrato and a decay (1/s)."""
    t = np.arange(n) / SR
    vib = 1 + 0.004 * rng.uniform(0, 1) * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    phase = 2 * np.pi * freq * np.cumsum(vib) / SR
    weights = rng.uniform(0, 1, harmonics) / np.arange(1, harmonics + 1) ** rng.uniform(0.5, 2)
    x = sum(w * np.sin((k + 1) * phase) for k, w in enumerate(weights))
    decay = np.exp(-t * rng.uniform(*decay))
    return x * decay * _env(n, int(0.01 * SR), int(0.03 * SR))


def _midi(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def tone(rng: np.random.Generator, n: int) -> np.ndarray:
    """A steady tone, sine to buzzy, 110-1500 Hz (a test tone, a synth pad, a whistle)."""
    return _norm(_note(float(rng.uniform(110, 1500)), n, rng, int(rng.integers(1, 8)), decay=(0.0, 0.3)))


def chord(rng: np.random.Generator, n: int) -> np.ndarray:
    """Three or four notes of a major/minor chord held together."""
    root = float(rng.uniform(45, 72))
    steps = (0, 4, 7, 12) if rng.random() < 0.5 else (0, 3, 7, 10)
    return _norm(sum(_note(_midi(root + s), n, rng, decay=(0.0, 1.0)) for s in steps[: int(rng.integers(3, 5))]))


def music(rng: np.random.Generator, n: int) -> np.ndarray:
    """A melody over a bass line with a drum pattern (kick and hi-hat) at 80-160 bpm."""
    beat = int(SR * 60 / rng.uniform(80, 160))
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12]) + rng.uniform(55, 70)
    out = np.zeros(n)
    for start in range(0, n, beat // 2):
        m = min(n - start, beat // 2 * int(rng.integers(1, 3)))
        out[start:start + m] += 0.5 * _note(_midi(float(rng.choice(scale))), m, rng)
    for start in range(0, n, 2 * beat):
        m = min(n - start, 2 * beat)
        out[start:start + m] += 0.4 * _note(_midi(float(rng.choice(scale)) - 24), m, rng, 3)
    for i, start in enumerate(range(0, n, beat // 2)):
        m = min(n - start, int(0.15 * SR))
        t = np.arange(m) / SR
        if i % 2 == 0:
            out[start:start + m] += 0.8 * np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 18)
        hat = _band(rng.standard_normal(m), 5000, 7500) * np.exp(-t * 60)
        out[start:start + m] += 0.3 * hat
    return _norm(out)


def _clicks(rng: np.random.Generator, n: int, rate_hz: tuple[float, float], band: tuple[float, float],
            ms: tuple[float, float]) -> np.ndarray:
    out = np.zeros(n)
    t = float(rng.uniform(0, 0.2))
    while t * SR < n:
        a = int(t * SR)
        m = min(n - a, int(rng.uniform(*ms) * SR / 1000))
        if m > 8:
            burst = _band(rng.standard_normal(m), *band) * np.exp(-np.arange(m) / (0.25 * m))
            out[a:a + m] += burst * rng.uniform(0.4, 1.0)
        t += float(rng.exponential(1 / rng.uniform(*rate_hz)))
    return _norm(out)


def keyboard(rng: np.random.Generator, n: int) -> np.ndarray:
    """Typing: clicks of 5-20 ms at 4-12 keys a second, each key a little different."""
    lo = float(rng.uniform(800, 2500))
    return _clicks(rng, n, (4, 12), (lo, lo * rng.uniform(2, 4)), (5, 20))


def mouse(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mouse buttons: sharp 2-6 ms clicks, sparse (0.5-3 a second)."""
    lo = float(rng.uniform(2000, 4000))
    return _clicks(rng, n, (0.5, 3), (lo, lo * 1.8), (2, 6))


def game(rng: np.random.Generator, n: int) -> np.ndarray:
    """Game effects: laser sweeps, coin blips (square waves), explosions (low rumbling noise)."""
    out = np.zeros(n)
    t = 0.0
    while t * SR < n:
        a = int(t * SR)
        m = min(n - a, int(rng.uniform(0.08, 0.8) * SR))
        if m < 16:
            break
        tt = np.arange(m) / SR
        kind = int(rng.integers(3))
        if kind == 0:
            f0, f1 = rng.uniform(300, 3000, 2)
            ev = signal.chirp(tt, f0, tt[-1], f1, method="logarithmic")
        elif kind == 1:
            f = rng.uniform(400, 1400)
            ev = signal.square(2 * np.pi * np.where(tt < tt[-1] / 3, f, f * 1.5) * tt) * 0.6
        else:
            ev = signal.sosfilt(signal.butter(2, rng.uniform(150, 600), fs=SR, output="sos"), rng.standard_normal(m))
            ev = _norm(ev)
        out[a:a + m] += ev * np.exp(-tt * rng.uniform(1, 8)) * _env(m, 40, 80)
        t += m / SR + float(rng.uniform(0.05, 0.8))
    return _norm(out)


def breath(rng: np.random.Generator, n: int) -> np.ndarray:
    """Breaths: band-limited noise swelling in and out over 0.4-1.2 s."""
    out = np.zeros(n)
    t = float(rng.uniform(0, 0.3))
    while t * SR < n:
        a = int(t * SR)
        m = min(n - a, int(rng.uniform(0.4, 1.2) * SR))
        if m < 64:
            break
        lo = float(rng.uniform(300, 900))
        out[a:a + m] += _band(rng.standard_normal(m), lo, lo * rng.uniform(3, 6), 2) * np.hanning(m) ** 1.5
        t += m / SR + float(rng.uniform(0.5, 2.0))
    return _norm(out)


def cough(rng: np.random.Generator, n: int) -> np.ndarray:
    """Coughs: one to three 150-350 ms bursts, sharp attack, noise through a throat-like resonance."""
    out = np.zeros(n)
    t = float(rng.uniform(0, 0.3))
    for _ in range(int(rng.integers(1, 4))):
        a = int(t * SR)
        m = min(n - a, int(rng.uniform(0.15, 0.35) * SR))
        if m < 64:
            break
        tt = np.arange(m) / SR
        f = float(rng.uniform(400, 1200))
        burst = _band(rng.standard_normal(m), f * 0.6, f * 2.5, 2) + 0.3 * np.sin(2 * np.pi * rng.uniform(90, 200) * tt)
        out[a:a + m] += burst * np.exp(-tt * rng.uniform(8, 20)) * _env(m, int(0.004 * SR), 32)
        t += m / SR + float(rng.uniform(0.1, 0.5))
    return _norm(out)


def hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz and its harmonics) or a fan's hum with a little noise."""
    t = np.arange(n) / SR
    f = 50.0 if rng.random() < 0.5 else 60.0
    if rng.random() < 0.3:
        f = float(rng.uniform(80, 240))
    x = sum(rng.uniform(0, 1) / k * np.sin(2 * np.pi * f * k * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 6))
    return _norm(x + 0.05 * rng.standard_normal(n))


def white_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return _norm(rng.standard_normal(n))


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f noise: white noise shaped in the frequency domain (power falls 3 dB per octave)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    return _norm(np.fft.irfft(spec / np.sqrt(f), n))


KINDS: dict[str, Maker] = {
    "tone": tone, "chord": chord, "music": music, "keyboard": keyboard, "mouse": mouse, "game": game,
    "breath": breath, "cough": cough, "hum": hum, "white_noise": white_noise, "pink_noise": pink_noise,
}
BED_KINDS = ("music", "hum", "pink_noise", "white_noise", "keyboard", "game", "tone")   # can run under speech


def make_sound(kind: str, seed: int | np.random.Generator, seconds: float) -> np.ndarray:
    """`seconds` of one kind at peak 1 (same seed -> same samples)."""
    if kind not in KINDS:
        raise ValueError(f"unknown sound kind {kind!r}; known: {', '.join(KINDS)}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng([int(seed), 7])
    n = max(1, int(round(seconds * SR)))
    return KINDS[kind](rng, n)[:n]

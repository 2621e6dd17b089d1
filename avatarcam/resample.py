"""Streaming polyphase resampling in numpy.

Microphones and outputs often refuse 16 kHz (44.1/48 kHz only), and the engine wants exactly 16 kHz,
so audio is converted block by block. A windowed-sinc (Kaiser) low-pass split into polyphase branches
keeps the cost proportional to the output rate, and the filter history carried between blocks makes
the block boundaries inaudible.
"""
from __future__ import annotations

from math import gcd

import numpy as np


class PolyphaseResampler:
    """Converts a stream of float32 mono blocks from ``rate_in`` to ``rate_out``.

    ``zero_crossings`` sets the filter length (per side, in periods of the cut-off), ``rolloff`` the
    cut-off as a fraction of the lower Nyquist frequency. Defaults give >80 dB stop-band attenuation.
    """

    def __init__(self, rate_in: int, rate_out: int, zero_crossings: int = 16, rolloff: float = 0.92,
                 beta: float = 8.6):
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
        g = gcd(int(rate_in), int(rate_out))
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        self.up, self.down = self.rate_out // g, self.rate_in // g
        fs_up = self.rate_in * self.up
        cutoff = 0.5 * min(self.rate_in, self.rate_out) * rolloff
        period = fs_up / (2 * cutoff)  # upsampled samples per zero crossing of the sinc
        half = int(np.ceil(zero_crossings * period))
        n = np.arange(-half, half + 1, dtype=np.float64)
        h = np.sinc(2 * cutoff / fs_up * n) * np.kaiser(len(n), beta) * (2 * cutoff / fs_up) * self.up
        taps = -(-len(h) // self.up) * self.up
        h = np.concatenate([h, np.zeros(taps - len(h))])
        self.taps_per_phase = taps // self.up
        # bank[p, i] multiplies x[j - (K-1) + i] for output phase p (the branch reversed for a dot product)
        self._bank = np.ascontiguousarray(h.reshape(self.taps_per_phase, self.up).T[:, ::-1], np.float32)
        self._hist = np.zeros(self.taps_per_phase - 1, np.float32)
        # Position of the next output sample (upsampled units, relative to the next input sample). Starting
        # at the filter's half length centres the filter on each output's own time: output m is the input
        # signal at time m / rate_out exactly, and its newest needed input arrives latency_s later.
        self._half = half
        self._pos = half
        self.latency_s = half / fs_up

    @property
    def passthrough(self) -> bool:
        return self.up == self.down

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample one block; output length varies by at most one sample around ``len(x)*out/in``."""
        x = np.asarray(x, np.float32).reshape(-1)
        if self.passthrough:
            return x.copy()
        buf = np.concatenate([self._hist, x])
        limit = len(x) * self.up  # outputs whose newest input sample is inside this block
        if self._pos >= limit:
            n_out = 0
        else:
            n_out = -(-(limit - self._pos) // self.down)
        u = self._pos + self.down * np.arange(n_out, dtype=np.int64)
        j, phase = np.divmod(u, self.up)
        windows = buf[j[:, None] + np.arange(self.taps_per_phase)[None, :]]
        y = np.einsum("ik,ik->i", windows, self._bank[phase]).astype(np.float32)
        self._pos = self._pos + self.down * n_out - limit
        if len(self._hist):
            self._hist = buf[len(buf) - len(self._hist):].copy()
        return y

    def reset(self) -> None:
        self._hist[:] = 0
        self._pos = self._half


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Whole-clip convenience wrapper: ``round(len(x) * rate_out / rate_in)`` samples, time-aligned."""
    r = PolyphaseResampler(rate_in, rate_out)
    if r.passthrough:
        return np.asarray(x, np.float32).copy()
    pad = int(np.ceil(r.latency_s * rate_in)) + r.taps_per_phase + 1
    y = r.process(np.concatenate([np.asarray(x, np.float32), np.zeros(pad, np.float32)]))
    return y[:int(round(len(x) * rate_out / rate_in))]

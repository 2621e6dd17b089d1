"""Shifted flow-matching schedule: the table the authors train on, and the per-level timesteps.

x_t = (1 - sigma) x0 + sigma * eps and the network predicts v = eps - x0, so x0 = x_t - sigma v.
Sigma is looked up in the 1000-entry table (nearest timestep), as the authors do: sigma(0) is
therefore 0.00498, not 0, which matters only for bit-compatibility of the cache-update call.
"""
from __future__ import annotations

import torch

from .config import StreamConfig


class FlowSchedule:
    def __init__(self, shift: float = 5.0, num_train_timesteps: int = 1000):
        self.shift = shift
        base = torch.linspace(1.0, 0.0, num_train_timesteps + 1, dtype=torch.float32)[:-1]
        self.sigmas = shift * base / (1 + (shift - 1) * base)
        self.timesteps = self.sigmas * num_train_timesteps
        self.num_train_timesteps = num_train_timesteps

    def warp(self, step: float) -> float:
        """Map a configured step (1000 = pure noise) to the shifted table: index num_train - step."""
        table = torch.cat([self.timesteps, torch.zeros(1)])
        index = int(round(self.num_train_timesteps - float(step)))
        if not 0 <= index <= self.num_train_timesteps:
            raise ValueError(f"step {step} is outside [0, {self.num_train_timesteps}]")
        return float(table[index])

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Nearest-table sigma for each timestep (float32, same shape as t)."""
        t = torch.as_tensor(t, dtype=torch.float32)
        idx = (self.timesteps.to(t.device)[None, :] - t.reshape(-1, 1)).abs().argmin(dim=1)
        return self.sigmas.to(t.device)[idx].reshape(t.shape)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Noise x0 to per-frame timesteps t of shape (batch, frames)."""
        s = self.sigma(t).to(x0.device)[..., None, None, None]
        return ((1 - s) * x0.float() + s * noise.float()).to(noise.dtype)

    def x0_from_flow(self, x_t: torch.Tensor, flow: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = self.sigma(t).to(x_t.device, torch.float64)[..., None, None, None]
        return (x_t.double() - s * flow.double()).to(flow.dtype)

    def levels(self, stream: StreamConfig) -> list[float]:
        """All timesteps a block visits, noisiest first: L levels, each split into N passes.

        With N > 1 the configured steps are subdivided linearly (before warping) towards the next
        level, the last level towards 0; with N = 1 these are exactly the configured (warped) steps.
        """
        steps = list(stream.timesteps)
        nxt = steps[1:] + [0.0]
        raw = [s - p * (s - n) / stream.passes for s, n in zip(steps, nxt) for p in range(stream.passes)]
        return [self.warp(r) if stream.warp else float(r) for r in raw]


def schedule_for(stream: StreamConfig) -> FlowSchedule:
    return FlowSchedule(stream.shift, stream.num_train_timesteps)

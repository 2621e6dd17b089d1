"""A rig decoder for cartoon avatars: read the pose out of the latent, let the avatar's own rig draw it.

Why: a cartoon avatar made by our renderer (`engine.toon`) is not a picture but a rig: an
`Identity` plus per-frame `FaceControls` (jaw, lip width and rounding, lids, head yaw/roll/nod).
The toon model was trained on latents of exactly those frames, so what a generated latent says
is "this face under these controls". A learned decoder has to redraw that from 16x16x12 numbers
and comes out soft (the mouth, the jaw line); the rig draws it at any size with every outline,
eye and accessory of the avatar, at about 10 ms a frame on one core. So for a rigged avatar:

    latent --ControlReader--> controls --render_frame(identity)--> frame

`ControlReader` is a small CNN trained on the autoencoder's latents of rendered frames (perturbed
the way the generator errs; `engine/train/train_rig.py`). Blinks are not read: the audio cannot
predict them, so the stream's `IdleBlinks` clock shuts the lids. Avatars that are only pictures
(photos, drawings) have no rig and keep the reference-aware decoder (`engine/refdecoder.py`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .toon.identity import Identity
from .toon.render import FaceControls, render_frame, render_portrait
from .weights_pair import load_weights, read_config, save_pair

READ_CONTROLS = ("mouth_open", "mouth_width", "mouth_round", "yaw", "roll", "nod")
SIGNED = ("yaw", "roll", "nod")        # in -1..1 (tanh); the others in 0..1 (sigmoid)


@dataclass
class ReaderConfig:
    latent_channels: int = 12
    latent_size: int = 16
    channels: tuple[int, ...] = (48, 64, 96)   # at latent_size, /2, /4
    hidden: int = 128

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) != 3:
            raise ValueError(f"ReaderConfig: channels needs 3 sizes, got {self.channels}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


class ControlReader(nn.Module):
    """(latent, reference latent) -> the controls in READ_CONTROLS order.

    The difference to the reference latent makes the reading identity-free: the same jaw drop
    moves the same cells by similar amounts on every face.
    """

    def __init__(self, cfg: ReaderConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ReaderConfig()
        c = cfg.channels
        act = nn.SiLU()
        self.features = nn.Sequential(
            nn.Conv2d(2 * cfg.latent_channels, c[0], 3, padding=1), act,
            nn.Conv2d(c[0], c[0], 3, padding=1), act,
            nn.Conv2d(c[0], c[1], 4, stride=2, padding=1), act,
            nn.Conv2d(c[1], c[1], 3, padding=1), act,
            nn.Conv2d(c[1], c[2], 4, stride=2, padding=1), act,
        )
        side = cfg.latent_size // 4
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c[2] * side * side, cfg.hidden), act,
                                  nn.Linear(cfg.hidden, len(READ_CONTROLS)))
        self.register_buffer("signed", torch.tensor([n in SIGNED for n in READ_CONTROLS]), persistent=False)

    def forward(self, z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
        z_ref = z_ref.to(z.dtype).expand_as(z)
        raw = self.head(self.features(torch.cat([z, z - z_ref], 1)))
        return torch.where(self.signed, torch.tanh(raw), torch.sigmoid(raw))

    def save(self, path: str | os.PathLike) -> None:
        save_pair(self, self.cfg.to_dict(), path, "toon-control-reader")

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str = "cpu") -> "ControlReader":
        path, cfg = read_config(path, "control reader")
        return load_weights(cls(ReaderConfig(**cfg)), path, "control reader", map_location)


def controls_from(values: np.ndarray, blink: float = 0.0) -> FaceControls:
    """One row of reader output (READ_CONTROLS order) and a lid value -> FaceControls."""
    return FaceControls(**{n: float(v) for n, v in zip(READ_CONTROLS, values)}, blink=float(blink))


def rig_matches(identity: Identity, image: np.ndarray, tolerance: float = 2.0) -> bool:
    """Is `image` (any size, square) this identity's portrait? Mean absolute difference in grey levels.

    Why: an avatar's card records the seed it was drawn from, but the picture on disk is what the
    user sees in the library; if the two disagree (an edited picture, another renderer version)
    the rig would draw a different face, so the caller falls back to the picture's decoder.
    """
    if image.ndim != 3 or image.shape[0] != image.shape[1]:
        return False
    drawn = render_portrait(identity, int(image.shape[0])).astype(np.float32)
    return float(np.abs(drawn - image.astype(np.float32)).mean()) <= tolerance


class RigDecoder:
    """Latents -> frames drawn by the avatar's rig at `size`; see the module docstring."""

    def __init__(self, reader: ControlReader, identity: Identity, size: int):
        self.reader, self.identity, self.size = reader, identity, int(size)
        self.last_controls: list[FaceControls] = []   # what the latest decode drew (for tests and tools)

    @torch.no_grad()
    def read(self, z: torch.Tensor, z_ref: torch.Tensor) -> np.ndarray:
        """(N, C, h, w) latents -> (N, len(READ_CONTROLS)) controls."""
        p = next(self.reader.parameters())
        return self.reader(z.to(p.dtype), z_ref.to(p.dtype)).float().cpu().numpy()

    def decode(self, z: torch.Tensor, z_ref: torch.Tensor, blinks: np.ndarray | None = None) -> np.ndarray:
        """(N, C, h, w) -> uint8 (N, size, size, 3)."""
        values = self.read(z, z_ref)
        blinks = np.zeros(len(values), np.float32) if blinks is None else blinks
        self.last_controls = [controls_from(v, b) for v, b in zip(values, blinks)]
        return np.stack([render_frame(self.identity, c, self.size) for c in self.last_controls])

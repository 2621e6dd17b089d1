"""A rig decoder for cartoon avatars: read the pose out of the latent, let the avatar's own rig draw it.

Why: a cartoon avatar made by our renderer (`engine.toon`) is not a picture but a rig: an
`Identity` plus per-frame `FaceControls` (jaw, lip width and rounding, lids, head yaw/roll/nod).
The toon model was trained on latents of exactly those frames, so what a generated latent says
is "this face under these controls". A learned decoder has to redraw that from 16x16x12 numbers
and comes out soft (the mouth, the jaw line); the rig draws it at any size with every outline,
eye and accessory of the avatar, at about 10 ms a frame on one core. So for a rigged avatar:

    latent --ControlReader--> controls --render_frame(identity)--> frame

`ControlReader` is a small CNN trained on the autoencoder's latents of rendered frames (perturbed
the way the generator errs; `engine/train/train_rig.py`). What is drawn from its reading:

- the mouth (jaw, lip width and rounding), as read; width and rounding fade to neutral as the jaw
  closes, so a shut mouth is one calm line rather than a line that twitches with reading noise, and
  in silence small jaw readings are that noise and draw it shut (`MouthGate`);
- not the head: the generator's head pose does not follow the voice (read vs the clip's own pose
  on held-out speech: r -0.1..0.3) and reads as jitter, so `IdleHead` sways it slowly while the
  avatar speaks (nodding on syllables) and holds it still in silence, as the training clips do;
- not the lids: the audio cannot predict blinks, so the stream's `IdleBlinks` clock shuts them.

Avatars that are only pictures (photos, drawings) have no rig and keep the reference-aware
decoder (`engine/codecs/refdecoder.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.codecs.weights_pair import load_weights, read_config, save_pair
from engine.config import to_dict
from engine.toon.identity import Identity
from engine.toon.render import FaceControls, render_frame, render_portrait

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
        return to_dict(self)


class ControlReader(nn.Module):
    """(latent, reference latent) -> the controls in READ_CONTROLS order.

    The difference to the reference latent makes the reading identity-free: the same jaw drop
    moves the same cells by similar amounts on every face. The head pose is read as well (the
    evaluation compares it with the clips'), but `RigDecoder` does not draw it (module docstring).
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


JAW_DEADZONE = 0.06    # jaw readings below this are the reader's noise on a shut mouth (silence: mean 0.02, sd 0.05)


def calm_mouth(values: np.ndarray, closing: float = 0.15, deadzone: float | np.ndarray = JAW_DEADZONE) -> np.ndarray:
    """A shut mouth stays shut: jaw readings under `deadzone` (one for all rows, or one per row) draw it
    closed (the rest is rescaled to keep 1 at 1), and width and rounding fade to neutral (0.5, 0) as
    the jaw closes (below `closing`)."""
    out = values.copy()
    out[:, 0] = np.clip((out[:, 0] - deadzone) / (1.0 - deadzone), 0.0, 1.0)
    k = np.clip(out[:, 0] / closing, 0.0, 1.0)
    out[:, 1] = 0.5 + (out[:, 1] - 0.5) * k
    out[:, 2] = out[:, 2] * k
    return out


def ema_step(value: float, target: float, seconds: float, fps: float) -> float:
    """One frame of an exponential moving average with time constant `seconds`."""
    return value + (target - value) * (1.0 - np.exp(-1.0 / (seconds * fps)))


class MouthGate:
    """The jaw's dead zone for each next frame: full in silence, gone while the avatar speaks (causal).

    Why: a fixed dead zone keeps a silent mouth calm but also shuts the small openings between
    syllables, which cost lip sync (held-out speech through the mouth probe: r about 0.02 lower than
    no dead zone, with the same openness in silence). A speaking envelope (jaw readings above
    SPEAKING; rising in RISE_S, settling in SETTLE_S) narrows the dead zone while words come and
    widens it again when they stop, so silence is as calm as before.
    """

    SPEAKING = 0.12     # a raw jaw reading above this is speech, not the reader's noise on a shut mouth
    RISE_S, SETTLE_S = 0.05, 0.5

    def __init__(self, fps: float, deadzone: float = JAW_DEADZONE):
        self.fps, self.deadzone = float(fps), float(deadzone)
        self.env = 0.0

    def next(self, jaw: np.ndarray) -> np.ndarray:
        """(N,) raw jaw readings -> (N,) dead zones for calm_mouth."""
        out = np.empty(len(jaw), np.float64)
        for i, j in enumerate(np.asarray(jaw, np.float64)):
            speaking = float(j > self.SPEAKING)
            self.env = ema_step(self.env, speaking, self.RISE_S if speaking > self.env else self.SETTLE_S, self.fps)
            out[i] = self.deadzone * (1.0 - self.env)
        return out


class IdleHead:
    """Head yaw/roll/nod for each next frame, from the mouth the avatar is drawing (causal, seeded).

    Why: like the training clips' heads: a slow sway (three slow sines per axis, random rates and
    phases) plus a nod on each syllable (a fast minus a slow average of the jaw), both scaled by a
    speaking envelope (the jaw beyond SPEAKING, ~0.3 s to rise, ~0.25 s to settle), so the head
    is still in silence. The sway's clock runs with the envelope (seconds of talking, not frames
    since the start), so with a fixed seed the head is not in the same pose at the same frame
    number whatever the input (the evaluation's seed-locked pattern).
    """

    SPEAKING = 0.1                               # jaw opening (after calm_mouth) that counts as speech

    AMPLITUDE = np.array([0.27, 0.16, 0.16])     # yaw, roll, nod: the clips' typical sway

    def __init__(self, fps: float, seed: int | None = 0):
        self.fps = float(fps)
        rng = np.random.default_rng(None if seed is None else [int(seed), 7])
        self.rates = rng.uniform(0.12, 0.55, (3, 3))          # Hz, per axis x sine
        self.phases = rng.uniform(0, 2 * np.pi, (3, 3))
        self.reset()

    def reset(self) -> None:
        self.clock, self.env, self.fast, self.slow = 0.0, 0.0, 0.0, 0.0

    def next(self, jaw: np.ndarray) -> np.ndarray:
        """(N,) jaw openings -> (N, 3) yaw, roll, nod in -1..1."""
        out = np.zeros((len(jaw), 3), np.float32)
        for i, j in enumerate(np.asarray(jaw, np.float64)):
            speaking = float(j > self.SPEAKING)
            self.env = ema_step(self.env, speaking, 0.3 if speaking > self.env else 0.25, self.fps)
            self.fast, self.slow = ema_step(self.fast, j, 0.06, self.fps), ema_step(self.slow, j, 0.4, self.fps)
            gain = min(1.0, 1.5 * self.env)
            sway = np.sin(2 * np.pi * self.rates * self.clock + self.phases).sum(1) / np.sqrt(1.5)
            head = sway * self.AMPLITUDE
            head[2] += 0.6 * (self.fast - self.slow)
            out[i] = np.clip(head * gain, -1, 1)
            self.clock += gain / self.fps
        return out


class RigDecoder:
    """Latents -> frames drawn by the avatar's rig at `size`; see the module docstring."""

    def __init__(self, reader: ControlReader, identity: Identity, size: int, head: IdleHead | None = None,
                 gate: MouthGate | None = None):
        self.reader, self.identity, self.size = reader, identity, int(size)
        self.head, self.gate = head, gate
        self.last_controls: list[FaceControls] = []   # what the latest decode drew (for tests and tools)

    @torch.no_grad()
    def read(self, z: torch.Tensor, z_ref: torch.Tensor) -> np.ndarray:
        """(N, C, h, w) latents -> (N, len(READ_CONTROLS)) controls."""
        p = next(self.reader.parameters())
        return self.reader(z.to(p.dtype), z_ref.to(p.dtype)).float().cpu().numpy()

    def decode(self, z: torch.Tensor, z_ref: torch.Tensor, blinks: np.ndarray | None = None) -> np.ndarray:
        """(N, C, h, w) -> uint8 (N, size, size, 3)."""
        raw = self.read(z, z_ref)
        values = calm_mouth(raw, deadzone=self.gate.next(raw[:, 0]) if self.gate is not None else JAW_DEADZONE)
        values[:, 3:] = self.head.next(values[:, 0]) if self.head is not None else 0.0
        blinks = np.zeros(len(values), np.float32) if blinks is None else blinks
        self.last_controls = [controls_from(v, b) for v, b in zip(values, blinks)]
        return np.stack([render_frame(self.identity, c, self.size) for c in self.last_controls])

"""Anchor presets -> the stream's block size B, window L and passes N, read against a model card.

Why here and not in the UI: `avatarcam run` and the tray app must turn the same settings into the
same stream, so the preset (and the custom B/L/N kept in `settings.anchors`) is applied in one place,
and the latency a page shows is the engine's own formula (`engine.stream.expected_latency_s`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from engine.stream import expected_latency_s

from .config import AnchorSettings
from .errors import ModelError

PRESETS = ("balanced", "stable", "expressive")
MAX_BLOCK = 16
MAX_PASSES = 4


@dataclass(frozen=True)
class CardFacts:
    """What presets and estimates need from a model card."""

    name: str
    fps: float
    frames_per_latent: int
    block_frames: int
    timesteps: tuple[float, ...]
    passes: int
    lookahead_s: float
    width: int
    height: int
    stream: object = None  # the card's StreamConfig, used to validate overrides

    @property
    def window(self) -> int:
        return len(self.timesteps)


@dataclass(frozen=True)
class Choice:
    block_frames: int
    window: int
    passes: int


def card_facts(model: str | Path) -> CardFacts:
    """Read a model's card (a name or a folder); ModelError saying what is wrong when there is none."""
    from engine.card import load_card

    from .models import resolve_model
    folder = resolve_model(str(model))
    try:
        card = load_card(folder)
    except Exception as exc:  # CheckpointError, bad YAML, ...: a message for the user, not a crash
        raise ModelError(str(exc)) from exc
    s = card.stream
    return CardFacts(name=card.name, fps=float(card.fps), frames_per_latent=int(card.video_frames_per_latent),
                     block_frames=int(s.block_frames), timesteps=tuple(s.timesteps), passes=int(s.passes),
                     lookahead_s=card.audio.lookahead_s, width=int(card.width), height=int(card.height),
                     stream=s)


def block_seconds(facts: CardFacts, block_frames: int) -> float:
    return block_frames * facts.frames_per_latent / facts.fps


def latency_s(facts: CardFacts, choice: Choice) -> float:
    """The delay the viewer will feel with this choice (the running stream reports the same number)."""
    return expected_latency_s(block_seconds(facts, choice.block_frames), choice.window - 1, facts.lookahead_s)


def default_choice(facts: CardFacts) -> Choice:
    return Choice(facts.block_frames, facts.window, facts.passes)


def preset_choice(facts: CardFacts, preset: str) -> Choice:
    base = default_choice(facts)
    if preset == "stable":
        return dataclasses.replace(base, passes=min(MAX_PASSES, base.passes + 1))
    if preset == "expressive":
        return dataclasses.replace(base, block_frames=max(1, base.block_frames // 2))
    return base


def custom_choice(anchors: AnchorSettings, facts: CardFacts) -> Choice:
    """The custom B/L/N from the settings; a field left empty takes the card's value."""
    base = default_choice(facts)
    return Choice(*(getattr(anchors, f.name) if getattr(anchors, f.name) is not None else getattr(base, f.name)
                    for f in dataclasses.fields(Choice)))


def active_choice(anchors: AnchorSettings, facts: CardFacts) -> Choice:
    if anchors.preset == "custom":
        return custom_choice(anchors, facts)
    return preset_choice(facts, anchors.preset)


def window_timesteps(timesteps: tuple[float, ...], window: int) -> tuple[float, ...]:
    """L of the card's noise levels, evenly spread, always keeping the noisiest and the cleanest."""
    n = len(timesteps)
    if window >= n:
        return tuple(timesteps)
    if window == 1:
        return (timesteps[0],)
    picks = sorted({round(i * (n - 1) / (window - 1)) for i in range(window)})
    return tuple(timesteps[i] for i in picks)


def stream_fields(facts: CardFacts, choice: Choice) -> dict:
    """Stream overrides for B/L/N: only what differs from the card."""
    out: dict = {}
    if choice.block_frames != facts.block_frames:
        out["block_frames"] = choice.block_frames
    if choice.passes != facts.passes:
        out["passes"] = choice.passes
    if choice.window != facts.window:
        out["timesteps"] = window_timesteps(facts.timesteps, choice.window)
    return out

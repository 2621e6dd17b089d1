"""What a block size B, window L and pass count N cost the user, before they press Apply.

Latency (the audio-to-lips delay the viewer feels): one block of audio must arrive, then the block
waits L-1 window steps before it is clean, plus the audio features' look-ahead:
    block_s * (1 + (L - 1)) + look-ahead,  block_s = B * video frames per latent / fps.
Compute: each step runs the model N times over the L*B window frames plus the B frames written to
the cache, and emits B frames, so the cost per emitted frame is N * (L*B + B) / B = N * (L + 1).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from avatarcam.errors import ModelError

log = logging.getLogger(__name__)

MAX_BLOCK = 16
MAX_PASSES = 4
PRESETS = ("balanced", "stable", "expressive")
PRESET_TEXT = {
    "balanced": "The model's own settings: the trade-off it was trained for.",
    "stable": "One more pass per step: steadier faces, more compute, same delay.",
    "expressive": "Half-size blocks: lips react sooner; a little less temporal context.",
    "custom": "Your own block size, window and passes (below).",
}


@dataclass(frozen=True)
class CardFacts:
    """The model card facts the estimates need (from engine.stream.resolve_card)."""

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


def card_facts(model: str | None) -> CardFacts:
    """Read a model card (shipped name or folder); ModelError with the engine's message if missing."""
    from engine.stream import resolve_card
    try:
        card = resolve_card(model)
    except Exception as exc:  # CheckpointError, bad YAML, ...: a message for the page, not a crash
        raise ModelError(str(exc)) from exc
    audio = dict(card.audio)
    default_look = 20.0 if audio.get("encoder", "logmel") == "logmel" else 0.0
    look = float(audio.get("lookahead_ms", default_look)) / 1000.0
    s = card.stream
    return CardFacts(name=card.name, fps=float(card.fps), frames_per_latent=int(card.video_frames_per_latent),
                     block_frames=int(s.block_frames), timesteps=tuple(s.timesteps), passes=int(s.passes),
                     lookahead_s=look, width=int(card.width), height=int(card.height), stream=s)


def block_seconds(facts: CardFacts, block_frames: int) -> float:
    return block_frames * facts.frames_per_latent / facts.fps


def latency_s(facts: CardFacts, choice: Choice) -> float:
    return block_seconds(facts, choice.block_frames) * (1 + (choice.window - 1)) + facts.lookahead_s


def cost_per_frame(choice: Choice) -> float:
    """Frames of model compute per emitted frame: N * (L*B + B) / B."""
    b = choice.block_frames
    return choice.passes * (choice.window * b + b) / b


def relative_cost(facts: CardFacts, choice: Choice) -> float:
    return cost_per_frame(choice) / cost_per_frame(default_choice(facts))


def default_choice(facts: CardFacts) -> Choice:
    return Choice(facts.block_frames, facts.window, facts.passes)


def preset_choice(facts: CardFacts, preset: str) -> Choice:
    base = default_choice(facts)
    if preset == "stable":
        return dataclasses.replace(base, passes=min(MAX_PASSES, base.passes + 1))
    if preset == "expressive":
        return dataclasses.replace(base, block_frames=max(1, base.block_frames // 2))
    return base


def window_timesteps(timesteps: tuple[float, ...], window: int) -> tuple[float, ...]:
    """L of the card's noise levels, evenly spread, always keeping the noisiest and the cleanest."""
    n = len(timesteps)
    if window >= n:
        return tuple(timesteps)
    if window == 1:
        return (timesteps[0],)
    picks = sorted({round(i * (n - 1) / (window - 1)) for i in range(window)})
    return tuple(timesteps[i] for i in picks)


def check_choice(facts: CardFacts, choice: Choice, temporal_frames: int) -> list[str]:
    """Problems with advanced values, each with the reason; empty when they are fine."""
    problems = []
    if not 1 <= choice.block_frames <= MAX_BLOCK:
        problems.append(f"Block size B must be 1..{MAX_BLOCK}: each step emits B latent frames, so 0 emits nothing "
                        f"and {MAX_BLOCK}+ would delay the lips by seconds.")
    if not 1 <= choice.window <= facts.window:
        problems.append(f"Window L must be 1..{facts.window}: '{facts.name}' was distilled at {facts.window} noise "
                        "levels, and a window holds one block per level.")
    if not 1 <= choice.passes <= MAX_PASSES:
        problems.append(f"Passes N must be 1..{MAX_PASSES}: 1 is the one-step model; every extra pass multiplies "
                        "the compute per frame.")
    if not 0 <= temporal_frames <= 64:
        problems.append("Temporal anchor length must be 0..64 frames (0 turns the temporal anchor off); longer "
                        "anchors cost attention time on every step.")
    if not problems and facts.stream is not None:
        try:
            dataclasses.replace(facts.stream, **stream_fields(facts, choice), temporal_frames=temporal_frames)
        except (TypeError, ValueError) as exc:
            problems.append(f"The engine refuses these values: {exc}")
    return problems


def stream_fields(facts: CardFacts, choice: Choice) -> dict:
    """Overrides for B/L/N (only what differs from the card)."""
    out: dict = {}
    if choice.block_frames != facts.block_frames:
        out["block_frames"] = choice.block_frames
    if choice.passes != facts.passes:
        out["passes"] = choice.passes
    if choice.window != facts.window:
        out["timesteps"] = window_timesteps(facts.timesteps, choice.window)
    return out


# -- where B/L/N live in the settings ----------------------------------------------------------
# settings.anchors has no fields for custom B/L/N yet; until it does they are kept as extra keys,
# which load/save preserve.
CUSTOM_KEYS = {"block_frames": "anchors.block_frames", "window": "anchors.window", "passes": "anchors.passes"}


def stored_custom(settings, facts: CardFacts) -> Choice:
    base = default_choice(facts)
    values = {}
    for attr, dotted in CUSTOM_KEYS.items():
        value = getattr(settings.anchors, attr, None)
        if value is None:
            value = settings.extras.get(dotted)
        values[attr] = int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else getattr(base, attr)
    return Choice(**values)


def store_custom(settings, choice: Choice) -> None:
    for attr, dotted in CUSTOM_KEYS.items():
        if hasattr(settings.anchors, attr):
            setattr(settings.anchors, attr, getattr(choice, attr))
        else:
            settings.extras[dotted] = getattr(choice, attr)


def active_choice(settings, facts: CardFacts) -> Choice:
    preset = settings.anchors.preset
    if preset == "custom":
        return stored_custom(settings, facts)
    return preset_choice(facts, preset)

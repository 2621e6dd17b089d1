"""What a block size B, window L and pass count N cost the user, before they press Apply.

The choices themselves (presets, custom B/L/N, the latency) are `avatarcam.presets`, shared with
`avatarcam run`; this adds what only the page shows. Compute: each step runs the model N times over
the L*B window frames plus the B frames written to the cache, and emits B frames, so the cost per
emitted frame is N * (L*B + B) / B = N * (L + 1).
"""
from __future__ import annotations

import dataclasses

from avatarcam.config import Settings
from avatarcam.presets import MAX_BLOCK, MAX_PASSES, CardFacts, Choice, default_choice, stream_fields

PRESET_TEXT = {
    "balanced": "The model's own settings: the trade-off it was trained for.",
    "stable": "One more pass per step: steadier faces, more compute, same delay.",
    "expressive": "Half-size blocks: lips react sooner; a little less temporal context.",
    "custom": "Your own block size, window and passes (below).",
}


def cost_per_frame(choice: Choice) -> float:
    """Frames of model compute per emitted frame: N * (L*B + B) / B."""
    b = choice.block_frames
    return choice.passes * (choice.window * b + b) / b


def relative_cost(facts: CardFacts, choice: Choice) -> float:
    return cost_per_frame(choice) / cost_per_frame(default_choice(facts))


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


def store_custom(settings: Settings, choice: Choice) -> None:
    """Keep custom B/L/N in the settings (preset "custom" reads them back)."""
    settings.anchors.block_frames = choice.block_frames
    settings.anchors.window = choice.window
    settings.anchors.passes = choice.passes

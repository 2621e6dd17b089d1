"""The procedural cartoon-avatar domain the toon model is trained on.

identity (who), render (how a face looks under per-frame controls), speech (espeak-ng audio
with phoneme times from the synthesiser), visemes (phonemes -> mouth targets), clips (all of it
per seed). Deterministic in the seed so training data can be regenerated instead of stored.
"""

from engine.train.toon.identity import Identity, random_identity, render_portrait
from engine.train.toon.render import CONTROL_NAMES, FaceControls, render_frame

__all__ = ["Identity", "random_identity", "render_portrait", "FaceControls", "render_frame", "CONTROL_NAMES"]

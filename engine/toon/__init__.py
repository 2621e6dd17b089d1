"""The procedural cartoon avatars the toon model draws: who (identity), how a face looks under
per-frame controls (render), and where its eyes and mouth sit (regions).

Runtime code, not training code: the app draws new avatars and the demo portrait with it, the
evaluation measures inside its regions, and training renders its clips with it.
"""

from engine.toon.identity import Identity, random_identity
from engine.toon.render import CONTROL_NAMES, FaceControls, render_frame, render_portrait

__all__ = ["Identity", "random_identity", "render_portrait", "FaceControls", "render_frame", "CONTROL_NAMES"]

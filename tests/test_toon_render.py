"""The renderer: deterministic pixels, and controls that visibly move the right parts."""

import numpy as np
import pytest

from engine.toon.identity import random_identity
from engine.toon.render import CONTROL_NAMES, FaceControls, render_frame

SIZE = 128
MOUTH = (slice(int(SIZE * 0.5), int(SIZE * 0.72)), slice(int(SIZE * 0.3), int(SIZE * 0.7)))
EYES = (slice(int(SIZE * 0.3), int(SIZE * 0.47)), slice(int(SIZE * 0.25), int(SIZE * 0.75)))


def _diff(a, b, region=(slice(None), slice(None))):
    return np.abs(a[region].astype(int) - b[region].astype(int)).mean()


def test_same_seed_and_controls_give_identical_pixels():
    c = FaceControls(mouth_open=0.4, blink=0.3, yaw=0.2)
    assert np.array_equal(render_frame(random_identity(5), c, SIZE), render_frame(random_identity(5), c, SIZE))


def test_different_seeds_give_different_pictures():
    assert _diff(render_frame(random_identity(5), None, SIZE), render_frame(random_identity(6), None, SIZE)) > 5


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_mouth_open_changes_the_mouth_region(seed):
    ident = random_identity(seed)
    closed = render_frame(ident, FaceControls(mouth_open=0.0), SIZE)
    opened = render_frame(ident, FaceControls(mouth_open=1.0), SIZE)
    assert _diff(closed, opened, MOUTH) > 8
    assert _diff(closed, opened, EYES) < _diff(closed, opened, MOUTH) / 4  # only the brows lift a little


def test_round_and_wide_mouths_differ():
    ident = random_identity(11)
    oo = render_frame(ident, FaceControls(mouth_open=0.4, mouth_round=1.0, mouth_width=0.1), SIZE)
    ee = render_frame(ident, FaceControls(mouth_open=0.4, mouth_round=0.0, mouth_width=1.0), SIZE)
    assert _diff(oo, ee, MOUTH) > 4


def test_blink_closes_the_eyes_only():
    ident = random_identity(12)
    base = render_frame(ident, FaceControls(), SIZE)
    shut = render_frame(ident, FaceControls(blink=1.0), SIZE)
    assert _diff(base, shut, EYES) > 5
    assert _diff(base, shut, MOUTH) < 0.5


def test_head_pose_moves_the_face():
    ident = random_identity(13)
    base = render_frame(ident, FaceControls(), SIZE)
    for name in ("yaw", "roll", "nod"):
        moved = render_frame(ident, FaceControls(**{name: 1.0}), SIZE)
        assert _diff(base, moved) > 1.0, name


def test_controls_round_trip_through_arrays():
    c = FaceControls(mouth_open=0.1, mouth_width=0.2, mouth_round=0.3, blink=0.4, yaw=0.5, roll=-0.6, nod=0.7)
    arr = c.as_array()
    assert arr.shape == (len(CONTROL_NAMES),)
    assert FaceControls.from_array(arr) == FaceControls(*[float(np.float32(v)) for v in arr])


def test_tiny_size_is_rejected():
    with pytest.raises(ValueError, match="size"):
        render_frame(random_identity(0), None, 8)

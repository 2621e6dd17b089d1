"""Identities are plain data drawn from a seed."""

import pytest

from engine.toon.identity import HAIR_STYLES, random_identity
from engine.toon.render import render_portrait


def test_same_seed_gives_same_identity():
    assert random_identity(42) == random_identity(42)


def test_different_seeds_give_varied_looks():
    looks = [random_identity(s) for s in range(60)]
    assert len({i.hair_style for i in looks}) >= len(HAIR_STYLES) - 2
    assert len({i.skin for i in looks}) >= 30


def test_negative_seed_is_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        random_identity(-1)


def test_portrait_is_uint8_rgb_of_requested_size():
    img = render_portrait(random_identity(1), size=128)
    assert img.shape == (128, 128, 3) and img.dtype.name == "uint8"
    assert img.std() > 20  # a picture, not a flat fill

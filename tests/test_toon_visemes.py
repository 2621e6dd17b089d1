"""Phoneme -> mouth shape mapping and the smoothed tracks."""

import numpy as np

from engine.clips.visemes import TRACK_RATE, frame_means, mouth_track, visemes_for


def test_rounded_vowel_is_rounder_and_narrower_than_spread_vowel():
    (oo, _), (ee, _) = visemes_for("u:"), visemes_for("i:")
    assert oo[2] > ee[2] + 0.5
    assert ee[1] > oo[1] + 0.5


def test_diphthong_moves_between_two_shapes():
    first, second = visemes_for("aI")
    assert first[0] > second[0]  # opens wide, then closes towards "ee"


def test_silence_is_closed_and_unknown_phonemes_are_handled():
    assert visemes_for("_")[0][0] == 0.0
    assert 0 < visemes_for("qq")[0][0] < 1


def test_bilabial_closes_the_mouth_between_open_vowels():
    ph = [(0.0, "_"), (0.1, "A:"), (0.3, "m"), (0.38, "A:"), (0.6, "_")]
    tr = mouth_track(ph, 0.8)
    mid_m = int(0.34 * TRACK_RATE)
    vowel = int(0.2 * TRACK_RATE)
    assert tr[vowel, 0] > 0.6
    assert tr[mid_m, 0] < 0.1
    assert tr[int(0.75 * TRACK_RATE), 0] < 0.02


def test_frame_means_average_each_frame_interval():
    track = np.arange(40, dtype=np.float32)[:, None]  # 200 ms at 200 Hz
    out = frame_means(track, 5, 25)
    assert np.allclose(out[:, 0], [3.5, 11.5, 19.5, 27.5, 35.5])

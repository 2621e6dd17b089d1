"""The picture measures on hand-made per-frame records: what counts as smear and what as motion."""
from __future__ import annotations

import numpy as np

from engine.tools.eval_picture import picture_summary


def record(open_: np.ndarray, eye_dist: np.ndarray) -> dict:
    n = len(open_)
    ones = np.ones(n)
    return {"frames": n, "open": open_, "eye_dist": eye_dist, "white_l": ones, "white_r": ones,
            "psnr": 40 * ones, "eye_edge": ones, "change_outside": 0.1 * ones}


def speech_and_silence(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """First half silent (mouth shut), second half speech: syllables open the mouth, shut between."""
    rng = np.random.default_rng(seed)
    silent = np.arange(n) < n // 2
    open_ = np.where(silent, 0.02, np.abs(np.sin(np.arange(n) * 0.7)) * rng.uniform(0.2, 0.8, n))
    return silent, open_


def test_a_head_that_sways_only_while_speaking_is_not_smear():
    silent, open_ = speech_and_silence()
    eye_dist = np.where(silent, 2.0, 6.0)          # speech moves the head: every speaking frame further away
    s = picture_summary(record(open_, eye_dist), silent, fps=25, portrait_eye_edge=1.0)
    assert abs(s["smear_ratio"] - 1.0) < 1e-6
    assert s["smear_ratio_vs_all_closed"] > 1.5    # the older measure counts the sway


def test_eyes_that_blur_as_the_mouth_opens_are_smear():
    silent, open_ = speech_and_silence()
    eye_dist = 2.0 + 20.0 * open_                  # distance follows the opening itself
    s = picture_summary(record(open_, eye_dist), silent, fps=25, portrait_eye_edge=1.0)
    assert s["smear_ratio"] > 1.5 and s["smear_ratio_vs_all_closed"] > 1.5


def test_the_probe_trains_on_crisp_rig_frames_and_round_trips_of_the_same_controls():
    from engine.codecs.autoencoder import load_default
    from engine.tools.probe import make_dataset
    trips = make_dataset(8, 70000, seed=5, autoencoder=load_default())
    crisp = make_dataset(8, 70000, seed=5, crisp=True)
    assert trips[0].shape == crisp[0].shape and (trips[1] == crisp[1]).all()   # same crops, same targets
    # a round trip blurs: the crisp crops hold more edge energy
    edges = lambda x: np.abs(np.diff(x.astype(np.float32), axis=2)).mean()  # noqa: E731
    assert edges(crisp[0]) > 1.2 * edges(trips[0])

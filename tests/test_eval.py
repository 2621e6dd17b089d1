"""engine.tools.eval and engine.tools.probe: the evaluation's JSON, the mouth probe, and the lag estimator.

The evaluation runs end to end (`python -m engine.tools.eval --quick`, in-process) on the random-weight test
card: its numbers mean nothing, but every part (held-out clips through espeak-ng, the streams, the
probe, the summaries, the JSON and the plot) runs for real. The probe tests use the shipped probe
on frames from the real renderer.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from engine.tools.eval import VARIANTS, main
from engine.tools.lipsync import best_lag, lag_correlations, silent_mask
from engine.tools.probe import MouthProbe
from engine.toon.identity import random_identity
from engine.toon.render import FaceControls, render_frame
from fixtures_card import make_card

try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    card = make_card(folder / "card", reference=True)
    out, png, md = folder / "eval.json", folder / "eval.png", folder / "eval.md"
    main(["--quick", "--model", str(card), "--ode-student", str(card / "model.safetensors"),
          "--out", str(out), "--plot", str(png) if HAVE_MPL else "", "--report", str(md),
          "--sheets", str(folder / "sheet")])
    return out, png, md


def test_eval_json_has_every_section_and_field(quick_run):
    r = json.loads(quick_run[0].read_text())
    assert set(r) >= {"model", "settings", "probe", "lipsync", "stability", "ablations", "picture", "timing"}
    pic = r["picture"]
    assert len(pic["avatars"]) == 2 and "rollout" in pic["avatars"]      # quick: one held-out avatar + rollout
    for p in pic["avatars"].values():
        assert {"psnr_silence", "eye_edge_ratio_silence", "smear_ratio", "smear_ratio_vs_all_closed",
                "jitter_outside_mouth_silence",
                "blinks_per_min_silence", "lost_eye_frames", "decode_ms_per_frame"} <= set(p)
        assert p["frames"] > 0 and p["silent_frames"] > 0
    assert len(pic["ground_truth"]) == 1   # the clips' own faces drawn by the rig, per picture avatar
    gt = next(iter(pic["ground_truth"].values()))   # the measures read it as intact
    assert gt["frames"] == pic["avatars"][next(k for k in pic["avatars"] if k != "rollout")]["frames"]
    assert gt["psnr_silence"] > 40 and gt["eye_edge_ratio_silence"] > 0.95 and gt["lost_eye_frames"] == 0
    assert 0.5 < gt["eye_sharpness_wide_vs_closed"] < 1.5
    assert len(pic["creators"]) == 1       # quick: one creator-made mix, measured like the picture avatars
    for c in pic["creators"].values():
        assert c["frames"] > 0 and {"psnr_silence", "open_speaking", "open_silent", "open_portrait", "look"} <= set(c)
    assert set(pic["targets_on_worst"]) == {"psnr_silence_ge_30", "eye_edge_ratio_ge_0.8", "smear_ratio_le_1.5",
                                            "eye_sharpness_ge_0.9", "no_lost_eye", "jitter_le_0.5",
                                            "blinks_8_to_20_per_min"}
    pooled = r["lipsync"]["pooled"]
    assert set(pooled) >= {"best_lag", "r_best", "r_lag0", "lags", "r_by_lag", "silent_mean_open",
                           "speaking_mean_open", "silent_closed_fraction"}
    assert pooled["lags"] == list(range(-6, 7))
    assert len(r["lipsync"]["clips"]) == 2
    assert set(r["lipsync"]["targets"]) == {"offset_within_1_frame", "r_at_least_0.8", "closed_in_silence",
                                          "opens_when_speaking"}
    assert set(r["lipsync"]["ceiling"]) >= {"r_lag0", "best_lag", "silent_mean_open"}
    trace = r["lipsync"]["trace"]
    assert len(trace["truth"]) == len(trace["probe"]) == len(trace["probe_on_truth_frames"]) == 75
    st = r["stability"]
    assert st["frames"] == 300 and len(st["segments"]) == 4
    assert set(st["segments"][0]) >= {"mad", "hist", "open_mean", "open_p10", "open_p90", "r_lag0"}
    assert {"drift_mad", "drift_hist", "target_drift_within_2pct"} <= set(st)
    variants = r["ablations"]["variants"]
    assert list(variants) == list(VARIANTS)
    for name, v in variants.items():
        assert "skipped" not in v, name
        assert {"drift_mad", "jitter_silence", "r_best", "best_lag", "mean_mad"} <= set(v), name
    assert set(r["ablations"]["ordering"]) == set(VARIANTS) - {"full"}
    assert isinstance(r["ablations"]["paper_ordering_holds"], bool)
    assert r["probe"]["held_out_round_trip"]["mouth_open"]["r2"] > 0.8


def test_eval_json_is_strict_json(quick_run):
    def no_constants(name):
        raise AssertionError(f"{name} in the JSON")
    json.loads(quick_run[0].read_text(), parse_constant=no_constants)


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed (the plot is optional)")
def test_eval_writes_contact_sheets(quick_run):
    from PIL import Image
    folder = quick_run[0].parent
    for name in ("sheet_frames.png", "sheet_eyes.png"):
        with Image.open(folder / name) as im:
            assert im.width >= 256 and im.height >= 64


def test_eval_writes_a_png_plot(quick_run):
    assert quick_run[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_writes_a_markdown_report_with_every_section(quick_run):
    text = quick_run[2].read_text()
    for heading in ("## Lip sync", "## Stability", "## Picture", "## Ablations", "Paper's ordering"):
        assert heading in text
    assert "| no_rope_reindex |" in text
    assert "| ground truth: the clips' own faces |" in text and "### Creator-made mixes" in text


def _mouths(seed: int, values=(0.0, 1.0)) -> np.ndarray:
    ident = random_identity(seed)
    return np.stack([render_frame(ident, FaceControls(mouth_open=v, yaw=0.3, nod=-0.2)) for v in values])


def test_probe_is_deterministic():
    frames = np.concatenate([_mouths(s, (0.0, 0.5)) for s in (1, 2)])
    a = MouthProbe.load().read(frames)
    b = MouthProbe.load().read(frames)
    assert a.shape == (4, 3)
    np.testing.assert_array_equal(a, b)


def test_probe_reads_an_open_mouth_as_more_open_than_a_closed_one():
    probe = MouthProbe.load()
    for seed in (5, 17, 100003):
        closed, opened = probe.read_open(_mouths(seed))
        assert opened > closed + 0.3, (seed, closed, opened)


def test_lag_estimator_finds_a_known_shift():
    rng = np.random.default_rng(0)
    truth = np.convolve(rng.standard_normal(400), np.ones(5) / 5, mode="same")
    late = np.roll(truth, 3) + 0.05 * rng.standard_normal(400)     # video 3 frames late
    early = np.roll(truth, -2)
    assert best_lag([(truth, late)], 6)["best_lag"] == 3
    assert best_lag([(truth, early)], 6)["best_lag"] == -2
    assert best_lag([(truth, late)], 6)["r_best"] > 0.9
    assert math.isclose(lag_correlations([(truth, truth)], 2)[0], 1.0)


def test_silent_mask_keeps_only_long_stretches_minus_their_ends():
    truth = np.array([0.5] * 3 + [0.0] * 10 + [0.5] * 2 + [0.0] * 5 + [0.5])
    mask = silent_mask(truth)
    assert mask.nonzero()[0].tolist() == list(range(5, 11))

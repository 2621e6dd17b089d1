"""The evaluation's voices section: its measures on known signals, and `--only voices` end to end."""

import json

import numpy as np

from engine.tools.eval import main
from engine.tools.eval_voices import VoicesConfig, nonspeech_measures, nonspeech_program, speech_measures
from tests.fixtures_card import random_card  # noqa: F401


def _truth(n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.zeros((n, 7), np.float32)
    t[:, 0] = np.clip(np.convolve(rng.uniform(-0.5, 1, n), np.ones(5) / 5, "same"), 0, 1)
    t[:, 1] = rng.uniform(0, 1, n)
    t[:, 2] = rng.uniform(0, 1, n)
    return t


def test_speech_measures_find_the_lag_and_the_amplitude():
    truth = _truth()
    mouth = np.zeros((200, 3), np.float32)
    mouth[2:] = truth[:-2, :3] * [2.0, 1.0, 1.0]        # video two frames late, opening twice as wide
    m = speech_measures([(truth[:100], mouth[:100]), (truth[100:], mouth[100:])], max_lag=6)
    assert m["best_lag"] == 2 and m["r_best"] > 0.99
    assert abs(m["amplitude"] - 2.0) < 1e-3 and abs(m["slope"] - 2.0) < 1e-3
    assert m["r_width"] > 0.99 and m["r_round"] > 0.99


def test_nonspeech_measures_compare_each_kind_with_silence():
    labels = [""] * 20 + ["tone"] * 20 + [""] * 20 + ["cough"] * 20 + [""] * 20
    mouth = np.full((100, 3), 0.05, np.float32)
    mouth[20:40, 0] = 0.2
    m = nonspeech_measures(labels, mouth)
    assert abs(m["silence_mean_open"] - 0.05) < 1e-6
    assert abs(m["kinds"]["tone"]["ratio_to_silence"] - 4.0) < 1e-4
    assert abs(m["kinds"]["cough"]["ratio_to_silence"] - 1.0) < 1e-4


def test_nonspeech_program_plays_each_kind_between_silences():
    cfg = VoicesConfig(sound_seconds=1.0, gap_seconds=0.6, repeats=2)
    (p,) = nonspeech_program(["tone", "keyboard"], cfg, level=0.05, fps=25).segments
    assert len(p.labels) == len(p.truth) == len(p.audio) // 640 == 4 * 25 + 5 * 15
    assert p.labels.count("tone") == 50 and p.truth[:, 0].max() == 0.0
    tone = p.audio[15 * 640:40 * 640]
    gap = p.audio[:15 * 640]
    assert np.abs(tone).max() > 100 * np.abs(gap).max()


def test_only_voices_writes_every_set_with_and_without_the_gate(random_card, tmp_path):  # noqa: F811
    out, md = tmp_path / "v.json", tmp_path / "v.md"
    main(["--only", "voices", "--quick", "--model", str(random_card), "--threads", "1",
          "--voices-out", str(out), "--voices-report", str(md)])
    result = json.loads(out.read_text())
    assert set(result["sets"]["off"]) == {"espeak", "flite", "festival", "perturbed", "nonspeech"}
    assert set(result["sets"]["on"]) == {"espeak", "perturbed", "nonspeech"}
    assert set(result["sets"]["off"]["nonspeech"]["kinds"]) == {"tone", "keyboard"}
    assert 0.0 <= result["sets"]["on"]["espeak"]["vad_open_fraction"] <= 1.0
    for name in ("espeak", "flite", "festival", "perturbed"):
        assert result["sets"]["off"][name]["frames"] == 75
    assert "festival_within_0.05_of_espeak" in result["targets"]
    assert set(result["sets"]["off"]["espeak"]["ceiling"]) >= {"r_lag0", "amplitude", "r_width", "r_round"}
    assert "## Non-speech" in md.read_text()

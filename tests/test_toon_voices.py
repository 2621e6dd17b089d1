"""flite and festival voices: real synthesiser processes, their own segment times, one phoneme alphabet."""

import numpy as np
import pytest

from engine.clips.arpabet import starts_from_ends, to_espeak
from engine.clips.festival import parse_segs
from engine.clips.flite import parse_psdur
from engine.clips.visemes import is_silence
from engine.clips.voices import FAMILIES, HELD_OUT, Voice, family_voices, random_voice, speak
from engine.config import SAMPLE_RATE

TEXT = "Hello moon, a happy baby."


@pytest.fixture(scope="module", params=[("flite", "slt"), ("flite", "kal"), ("festival", "kal_diphone"),
                                        ("festival", "cmu_us_slt_arctic_hts")], ids=lambda p: f"{p[0]}-{p[1]}")
def spoken(request):
    family, name = request.param
    return speak([TEXT], Voice(family, name))[0]


def test_audio_is_16k_float32_speech_of_plausible_length(spoken):
    assert spoken.audio.dtype == np.float32 and spoken.audio.ndim == 1
    assert 1.0 < spoken.audio.size / SAMPLE_RATE < 4.0
    assert 0.05 < np.abs(spoken.audio).max() <= 1.0


def test_segments_become_ordered_espeak_mnemonics_inside_the_audio(spoken):
    times = [t for t, _ in spoken.phonemes]
    assert times == sorted(times)
    assert times[-1] <= spoken.audio.size / SAMPLE_RATE + 0.3
    names = {p for _, p in spoken.phonemes}
    assert {"h", "m", "u:", "b", "p"} <= names          # "hh" -> "h", "uw" -> "u:", bilabials kept


def test_waveform_starts_inside_the_first_spoken_segment(spoken):
    """Onset of sound (5 % of peak) lies within the first non-silent segment (a soft /h/ may hide its start)."""
    i = next(i for i, (_, p) in enumerate(spoken.phonemes) if not is_silence(p))
    start, end = spoken.phonemes[i][0], spoken.phonemes[i + 1][0]
    loud = np.abs(spoken.audio) > 0.05 * np.abs(spoken.audio).max()
    onset = np.argmax(loud) / SAMPLE_RATE
    assert start - 0.03 <= onset <= end + 0.03


def test_same_request_gives_the_same_samples():
    a = speak(["Cheese please."], Voice("festival", "ked_diphone"))[0]
    b = speak(["Cheese please."], Voice("festival", "ked_diphone"))[0]
    assert a.audio.tobytes() == b.audio.tobytes() and a.phonemes == b.phonemes


def test_slower_rate_stretches_flite_and_festival():
    for family, name in (("flite", "awb"), ("festival", "kal_diphone")):
        fast = speak([TEXT], Voice(family, name, rate=210))[0]
        slow = speak([TEXT], Voice(family, name, rate=130))[0]
        assert slow.audio.size > 1.2 * fast.audio.size, family


def test_unknown_voice_is_one_clear_error():
    with pytest.raises(ValueError, match="flite has no built-in voice"):
        speak(["hi"], Voice("flite", "nobody"))
    with pytest.raises(ValueError, match="unknown synthesiser family"):
        family_voices("sam")


def test_held_out_voices_never_appear_in_training_draws():
    rng = np.random.default_rng(0)
    for family in FAMILIES:
        assert not set(HELD_OUT[family]) & set(family_voices(family))
        drawn = {random_voice(rng, family).name for _ in range(200)}
        assert not drawn & set(HELD_OUT[family])


def test_every_espeak_language_and_variant_speaks():
    names = family_voices("espeak")
    langs = sorted({n.split("+")[0] for n in names})
    variants = sorted({n.partition("+")[2] for n in names} - {""})
    voices = [Voice("espeak", lang) for lang in langs] + [Voice("espeak", f"en-us+{v}") for v in variants]
    for v, u in zip(voices, [speak(["Hi."], v)[0] for v in voices]):
        assert u.audio.size > 1000, v.name


def test_segment_parsers_read_end_times():
    assert parse_psdur("pau:0.220 hh:0.295 ax:0.342\n") == [(0.22, "pau"), (0.295, "hh"), (0.342, "ax")]
    assert parse_segs("separator ;\nnfields 1\n#\n0.1650 100 pau\n0.2550 100 hh\n") == [(0.165, "pau"), (0.255, "hh")]
    assert starts_from_ends([(0.2, "pau"), (0.3, "uw"), (0.3, "m")]) == [(0.0, "_"), (0.2, "u:")]
    assert [to_espeak(p) for p in ("AY1", "ow", "y", "sh")] == ["aI", "oU", "j", "S"]

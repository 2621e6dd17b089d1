"""CPU engine variants (engine.accel), the measured choice and its cache (avatarcam.tuning), the
override rules (avatarcam.engine_choice), the pipelined stream (engine.pipeline) and the pace
watch (avatarcam.stats.EnginePace). Real cards with random weights, real streams, real files;
nothing here is timed (speed is for `avatarcam bench backends`), and torch.compile is left to the
benchmark (it needs minutes of compilation)."""
from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from avatarcam.config import EngineSettings
from avatarcam.engine_choice import choose_engine, resolve_tuned
from avatarcam.errors import ConfigError
from avatarcam.stats import EnginePace
from avatarcam import tuning
from engine.accel import (REFERENCE, TOLERANCE, FastRefDecode, Variant, candidates, frame_difference, machine_key,
                          native_bf16, open_variant_stream, parity, within)
from engine.pipeline import PipelinedStream
from engine.card import resolve_card
from tests.fixtures_card import make_card

ROOT = Path(__file__).resolve().parents[1]


def voice(seconds: float) -> np.ndarray:
    with wave.open(str(ROOT / "avatarcam" / "data" / "demo_voice.wav"), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    return pcm[: int(seconds * 16000)]


def face(size: int = 128) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = (240, 200, 160)
    img[size // 2:, :, 2] = 90
    return img


@pytest.fixture(scope="module")
def ref_card(tmp_path_factory):
    return make_card(tmp_path_factory.mktemp("card") / "test-ref", reference=True)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AVATARCAM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# -- parity -------------------------------------------------------------------------------------------
def test_bf16_variant_matches_float32_eager_within_the_tolerance(ref_card):
    card = resolve_card(ref_card)
    result = parity(card, [REFERENCE, Variant("eager", "bfloat16"), Variant("int8", "float32")], face(), voice(0.6))
    assert result["eager/float32"]["max"] == 0 and result["eager/float32"]["ok"]
    for name in ("eager/bfloat16", "int8/float32"):
        diff = result[name]
        assert diff["frames"] >= 10
        assert diff["ok"], (name, diff)
        assert diff["mean"] <= TOLERANCE.max_mean and diff["p99"] <= TOLERANCE.max_p99


def test_parity_on_a_cartoon_avatar_compares_frames_its_rig_drew():
    """The tuner and the benchmark measure what the Default avatar runs: the shipped model, decoded by
    the cartoon's rig (bf16 latents may move the read jaw a little; the tolerance still holds)."""
    from engine.toon import random_identity, render_portrait
    card = resolve_card("toon")
    identity = random_identity(0)
    streams: dict = {}
    result = parity(card, [Variant("eager", "bfloat16")], render_portrait(identity, card.width), voice(0.6),
                    streams=streams, identity=identity)
    assert all(s.decoder.rigged for s in streams.values())
    diff = result["eager/bfloat16"]
    assert diff["frames"] >= 10 and diff["ok"], diff


def test_parity_fails_frames_that_differ_beyond_the_tolerance():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    same = frame_difference(frames, [f.copy() for f in frames])
    assert same["max"] == 0 and within(same)
    moved = [np.roll(f, 3, axis=1) for f in frames]            # a picture shifted by 3 pixels
    assert not within(frame_difference(frames, moved))
    with pytest.raises(ValueError, match="equally many frames"):
        frame_difference(frames, frames[:2])


def test_reference_decoder_wrapper_keeps_float32_exact_and_blends_bf16_in_float32(ref_card):
    card = resolve_card(ref_card)
    stream = open_variant_stream(card, REFERENCE)
    stream.start(face())
    dec = stream.decoder
    z = torch.randn(2, *stream.sampler.ref.shape[-3:], generator=torch.Generator().manual_seed(1))
    exact = dec.ref_decoder.decode(z, dec._ref)
    np.testing.assert_array_equal(FastRefDecode(dec.ref_decoder, torch.float32)(z, dec._ref), exact)
    fast = FastRefDecode(dec.ref_decoder, torch.bfloat16)
    half = fast(z, dec._ref)
    assert half.dtype == np.uint8 and half.shape == exact.shape
    assert within(frame_difference(list(exact), list(half)))
    assert fast.net.rgb.weight.dtype == torch.bfloat16 and dec.ref_decoder.rgb.weight.dtype == torch.float32


def test_variant_names_and_invalid_ones():
    assert Variant.parse("compile/bfloat16") == Variant("compile", "bfloat16")
    with pytest.raises(ValueError, match="dtype 'float16'"):
        Variant("eager", "float16")
    with pytest.raises(ValueError, match="int8"):
        Variant("int8", "bfloat16")


def test_candidates_follow_the_cpu(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    names = [v.name for v in candidates({"avx2", "avx512_bf16"}, compiler=True)]
    assert names == ["eager/float32", "eager/bfloat16", "int8/float32", "compile/float32", "compile/bfloat16"]
    assert [v.name for v in candidates({"avx2"}, compiler=False)] == ["eager/float32", "int8/float32"]
    assert [v.name for v in candidates(set(), compiler=False)] == ["eager/float32"]   # no AVX2: no fbgemm int8
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")          # held to AVX2: bf16 would be emulated
    assert not native_bf16({"avx2", "amx_bf16"})


# -- the cache ----------------------------------------------------------------------------------------
def test_cache_key_follows_isa_limits_threads_versions_and_model_files(tmp_path, monkeypatch):
    folder = make_card(tmp_path / "m")
    for key in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"):
        monkeypatch.delenv(key, raising=False)
    key, machine = tuning.cache_key(folder)
    assert machine["cpu"] and machine["torch"] == torch.__version__ and machine["limits"] == {}
    assert tuning.cache_key(folder)[0] == key                 # stable
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert tuning.cache_key(folder)[0] != key
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert tuning.cache_key(folder)[0] != key
    finally:
        torch.set_num_threads(threads)
    with open(folder / "model.safetensors", "ab") as fh:     # the model changed
        fh.write(b"\0")
    assert tuning.cache_key(folder)[0] != key
    assert machine_key({"x": 1})["x"] == 1


def test_a_small_model_is_not_measured_and_the_choice_is_cached(tmp_path, home):
    folder = make_card(tmp_path / "m")
    assert tuning.load_choice(folder) is None
    choice = tuning.tune(folder, say=lambda m: None)
    assert choice.variant == "eager/float32" and "not measured" in choice.reason
    assert tuning.load_choice(folder).key == choice.key
    data = json.loads(tuning.cache_path().read_text())
    assert list(data) == [choice.key]


def _saved(folder: Path, ms: dict[str, float], failing: tuple[str, ...] = ()) -> tuning.TunedChoice:
    key, machine = tuning.cache_key(folder)
    par = {v: {"ok": v not in failing, "mean": 0.1, "p99": 1.0, "max": 3} for v in ms}
    choice = tuning.TunedChoice(tuning.pick(ms, par), key, machine, ms, par, 80.0, "2026-12-02 00:00", "measured")
    tuning.save_choice(choice)
    return choice


def test_auto_takes_the_fastest_variant_that_passed_parity(tmp_path, home):
    folder = make_card(tmp_path / "m")
    ms = {"eager/float32": 90.0, "eager/bfloat16": 60.0, "compile/float32": 70.0, "compile/bfloat16": 40.0}
    saved = _saved(folder, ms, failing=("compile/bfloat16",))
    assert saved.variant == "eager/bfloat16"
    got = resolve_tuned(choose_engine(EngineSettings(device="cpu")), folder)
    assert (got.backend, got.dtype) == ("eager", "bfloat16") and "measured" in got.tuned


def test_run_takes_int8_when_it_measured_fastest(tmp_path, home):
    """The tuner's int8 choice is what `run` streams with, unless engine.backend names another backend."""
    folder = make_card(tmp_path / "m")
    _saved(folder, {"eager/float32": 90.0, "eager/bfloat16": 70.0, "int8/float32": 60.0})
    got = resolve_tuned(choose_engine(EngineSettings(device="cpu")), folder)
    assert (got.backend, got.dtype) == ("int8", "float32")
    got = resolve_tuned(choose_engine(EngineSettings(device="cpu", backend="eager")), folder)
    assert (got.backend, got.dtype) == ("eager", "bfloat16")


def test_engine_settings_override_the_measured_choice(tmp_path, home):
    folder = make_card(tmp_path / "m")
    _saved(folder, {"eager/float32": 90.0, "eager/bfloat16": 60.0, "compile/float32": 50.0,
                    "compile/bfloat16": 40.0})
    both = resolve_tuned(choose_engine(EngineSettings(device="cpu", backend="eager", dtype="float32")), folder)
    assert (both.backend, both.dtype) == ("eager", "float32")
    eager = resolve_tuned(choose_engine(EngineSettings(device="cpu", backend="eager")), folder)
    assert (eager.backend, eager.dtype) == ("eager", "bfloat16")
    fp32 = resolve_tuned(choose_engine(EngineSettings(device="cpu", dtype="float32")), folder)
    assert (fp32.backend, fp32.dtype) == ("compile", "float32")
    best = resolve_tuned(choose_engine(EngineSettings(device="cpu")), folder)
    assert (best.backend, best.dtype) == ("compile", "bfloat16")


@pytest.mark.parametrize("engine, message", [
    (EngineSettings(device="cuda"), "engine.device=cuda but"),
    (EngineSettings(device="cpu", backend="tensorrt"), "engine.backend=tensorrt needs an NVIDIA GPU"),
    (EngineSettings(device="cpu", dtype="float16"), "engine.dtype=float16 runs only on a GPU"),
])
def test_an_impossible_choice_is_one_clear_error(engine, message):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=message):
        choose_engine(engine)


# -- pipelining ---------------------------------------------------------------------------------------
def test_pipelined_stream_gives_the_same_frames_in_the_same_order(ref_card):
    card = resolve_card(ref_card)
    pcm = voice(1.2)
    chunk = 320                                               # 20 ms, as a microphone delivers it

    def frames(stream) -> list[np.ndarray]:
        stream.start(face())
        out = []
        for i in range(0, len(pcm), chunk):
            out += stream.push_audio(pcm[i:i + chunk])
        return out + stream.flush()

    plain = frames(open_variant_stream(card, REFERENCE))
    piped_stream = PipelinedStream(open_variant_stream(card, REFERENCE))
    try:
        piped = frames(piped_stream)
        assert len(piped) == len(plain) >= 25
        for a, b in zip(plain, piped):
            np.testing.assert_array_equal(a, b)
        piped_stream.start(face())                             # a new avatar mid-stream, then more audio
        more = piped_stream.push_audio(pcm[:6400]) + piped_stream.flush()
        assert len(more) >= 8 and piped_stream.step_ms
    finally:
        piped_stream.close()


# -- degrade visibly ----------------------------------------------------------------------------------
def test_engine_pace_says_behind_after_seconds_below_real_time_and_recovered_after():
    pace = EnginePace(after_s=2.0, rate=0.95)
    events = []
    heard = 0.0
    for i in range(1, 41):                                    # 0.5 s ticks: 4 s at real time, 6 s at half, 10 s at real time
        t = i * 0.5
        heard += 0.5 if t <= 4 or t > 10 else 0.25
        change = pace.update(t, heard)
        if change:
            events.append((t, change))
    assert [e[1] for e in events] == ["behind", "recovered"]
    assert 5.5 <= events[0][0] <= 7.0 and events[1][0] > 10.0

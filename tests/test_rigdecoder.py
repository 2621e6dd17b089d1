"""The rig decoder: cartoon avatars drawn by their own rig, posed by controls read from the latent."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.card import MODELS_DIR, load_card
from engine.tools.eval_picture import Geometry, white_pixels
from engine.codecs.rigdecoder import READ_CONTROLS, ControlReader, ReaderConfig, rig_matches
from engine.codecs.decoders import build_decoder
from engine.stream import AvatarStream
from engine.toon import random_identity, render_portrait
from engine.toon.regions import mouth_box
from tests.fixtures_qt import ui_home  # noqa: F401  (fixture)
from engine.toon.render import FaceControls, render_frame


@pytest.fixture(scope="module")
def decoder():
    torch.set_num_threads(1)
    return build_decoder(load_card(MODELS_DIR / "toon"), "cpu")


def test_reader_outputs_are_in_range_and_survive_a_save(tmp_path):
    torch.manual_seed(0)
    reader = ControlReader(ReaderConfig(latent_size=8, channels=(8, 8, 8), hidden=8)).eval()
    z, z_ref = torch.randn(5, 12, 8, 8) * 3, torch.randn(1, 12, 8, 8)
    out = reader(z, z_ref)
    assert out.shape == (5, len(READ_CONTROLS))
    signed = torch.tensor([n in ("yaw", "roll", "nod") for n in READ_CONTROLS])
    assert (out[:, ~signed] >= 0).all() and (out[:, ~signed] <= 1).all() and (out.abs() <= 1).all()
    reader.save(tmp_path / "rig.safetensors")
    assert torch.equal(ControlReader.load(tmp_path / "rig")(z, z_ref), out)


def test_rig_matches_its_own_portrait_only():
    ident = random_identity(100002)
    assert rig_matches(ident, render_portrait(ident, 512))
    assert not rig_matches(ident, render_portrait(random_identity(100003), 512))
    assert not rig_matches(ident, np.zeros((512, 300, 3), np.uint8))


@pytest.mark.parametrize("seed", [100002, 100008])
def test_shipped_reader_reads_the_jaw_and_draws_the_portrait_in_silence(decoder, seed):
    """Held-out avatars: the reference latent gives the portrait itself; an open mouth is read as open."""
    ident = random_identity(seed)
    portrait = render_portrait(ident, 512)
    z_ref = decoder.encode_image(portrait)
    decoder.reset(z_ref, portrait, identity=ident)
    assert decoder.rigged
    still = decoder.decode(z_ref[None])[0]                  # IdleBlinks waits >= 0.5 s before a first blink
    assert np.abs(still.astype(float) - portrait).mean() < 1.0
    opened = FaceControls(mouth_open=0.8, mouth_width=0.5)
    z_open = decoder.encode_image(render_frame(ident, opened, 256))
    frame = decoder.decode(z_open[None])[0]
    read = decoder._rig.last_controls[0]
    assert read.mouth_open > 0.55
    assert np.array_equal(frame, render_frame(ident, read, 512))          # drawn by the rig itself
    t, b, l, r = mouth_box(ident, 512)
    truth = render_frame(ident, opened, 512)[t:b, l:r].astype(float)
    assert np.abs(frame[t:b, l:r] - truth).mean() < np.abs(portrait[t:b, l:r] - truth).mean() / 2


def test_idle_blinks_shut_the_rig_s_lids(decoder):
    ident = random_identity(100003)
    portrait = render_portrait(ident, 512)
    z_ref = decoder.encode_image(portrait)
    decoder.reset(z_ref, portrait, identity=ident)
    geo = Geometry.of(100003, 512)
    frames = np.concatenate([decoder.decode(z_ref[None].expand(25, -1, -1, -1)) for _ in range(12)])  # 12 s
    whites = np.array([[white_pixels(geo.crop(f, box)) for box in geo.eyes] for f in frames])
    open_whites = whites[0]
    shut = (whites < 0.5 * open_whites).all(1)
    assert shut.any() and shut.mean() < 0.1                 # a few blinks, both eyes at once
    assert not ((whites < 0.5 * open_whites).any(1) & ~shut).any()   # never one eye alone


def test_idle_head_is_still_in_silence_and_sways_smoothly_while_speaking():
    from engine.codecs.rigdecoder import IdleHead
    head = IdleHead(25.0, seed=1)
    silent = head.next(np.zeros(50))
    assert np.abs(silent).max() == 0.0
    talking = head.next(0.35 + 0.3 * np.sin(2 * np.pi * 4 * np.arange(400) / 25))   # syllables at 4 Hz
    assert np.abs(talking[50:]).max(0).min() > 0.05                    # every axis moves
    assert np.abs(np.diff(talking, axis=0)).max() < 0.15               # no jumps between frames
    settled = head.next(np.zeros(75))
    assert np.abs(settled[-10:]).max() < 0.02                          # still again within 3 s
    again = IdleHead(25.0, seed=1)
    assert np.array_equal(again.next(np.zeros(50)), silent)


def test_the_idle_head_follows_talking_time_not_the_frame_number():
    """With the stream's fixed seed the sway must not put the head in the same pose at the same frame
    number whatever is said: the same words after a longer silence give the same head, later."""
    from engine.codecs.rigdecoder import IdleHead
    talking = 0.35 + 0.3 * np.sin(2 * np.pi * 4 * np.arange(200) / 25)
    early, late = IdleHead(25.0, seed=0), IdleHead(25.0, seed=0)
    early.next(np.zeros(50))
    late.next(np.zeros(130))
    assert np.array_equal(early.next(talking), late.next(talking))


def test_a_closed_mouth_is_one_calm_line():
    from engine.codecs.rigdecoder import calm_mouth
    values = np.array([[0.05, 0.9, 0.8, 0, 0, 0], [0.6, 0.9, 0.8, 0, 0, 0], [1.0, 0.2, 0.0, 0, 0, 0]])
    out = calm_mouth(values)
    assert out[0, 0] == 0.0 and out[0, 1] == 0.5 and out[0, 2] == 0.0    # noise on a shut mouth: shut, neutral
    assert 0.5 < out[1, 0] < 0.6 and np.allclose(out[1, 1:], values[1, 1:])   # open: as read
    assert out[2, 0] == 1.0


def test_small_openings_pass_while_speaking_and_stay_shut_in_silence():
    """The jaw's dead zone follows speech: a small opening between syllables is drawn, the same
    reading after a second of silence is the reader's noise on a shut mouth and is drawn shut."""
    from engine.codecs.rigdecoder import JAW_DEADZONE, MouthGate, calm_mouth
    gate = MouthGate(25.0)
    silence = gate.next(np.zeros(25))
    assert np.allclose(silence, JAW_DEADZONE)
    syllables = np.tile([0.4, 0.4, 0.05, 0.05], 10)
    zones = gate.next(syllables)
    values = np.zeros((len(syllables), 6))
    values[:, 0] = syllables
    drawn = calm_mouth(values, deadzone=zones)[:, 0]
    assert (drawn[-2:] > 0.0).all()                                      # between syllables: a little open
    gate.next(np.zeros(25))
    after = calm_mouth(values[-2:], deadzone=gate.next(syllables[-2:]))[:, 0]
    assert (after == 0.0).all()                                          # after silence: noise, shut


def test_a_picture_that_is_not_the_seed_s_portrait_falls_back_to_the_learned_decoder(decoder):
    ident = random_identity(100002)
    other = render_portrait(random_identity(100003), 512)
    decoder.reset(decoder.encode_image(other), other, identity=ident)
    assert not decoder.rigged
    assert decoder.decode(decoder.encode_image(other)[None]).shape == (1, 512, 512, 3)


def test_stream_draws_a_cartoon_avatar_with_its_rig():
    stream = AvatarStream(load_card(MODELS_DIR / "toon"), seed=0)
    ident = random_identity(7)
    stream.start(render_portrait(ident, 512), identity=ident)
    assert stream.decoder.rigged
    frames = stream.push_audio(np.zeros(16000, np.float32)) + stream.flush()
    assert frames and all(f.shape == (512, 512, 3) and f.dtype == np.uint8 for f in frames)


def test_training_writes_weights_and_held_out_errors(tmp_path):
    import json
    from engine.train.train_rig import RigTrainConfig, train
    tc = RigTrainConfig(examples=16, identities=2, steps=3, batch=4, threads=1, heldout=8, heldout_identities=2)
    train(tmp_path, tc, ReaderConfig())
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert set(metrics["mae"]) == set(READ_CONTROLS) and (tmp_path / "rig.safetensors").is_file()


def test_student_latents_are_the_stream_s_own_and_labelled_with_the_clip_s_mouth():
    """The reader's run-time data: the latents the shipped student streams for a training clip,
    deterministic by seed, one per frame, labelled with the clip's own controls."""
    from engine.clips.clip import make_clip
    from engine.train.rollout_latents import clip_latents
    torch.set_num_threads(1)
    card = str(MODELS_DIR / "toon")
    z, ref, y = clip_latents(card, 50_000, 2.0)
    clip = make_clip(50_000, 25, 2.0)
    assert z.shape == (clip.n_frames, 12, 16, 16) and ref.shape == (1, 12, 16, 16) and y.shape == (clip.n_frames, 6)
    np.testing.assert_array_equal(y[:, 0].numpy(), clip.controls[:, 0])
    z2, _, _ = clip_latents(card, 50_000, 2.0)
    assert torch.equal(z, z2)
    # the same latents the stream hands its decoder
    stream = AvatarStream(load_card(card), seed=0)
    from engine.toon.creator import training_identity
    stream.start(render_portrait(training_identity(50_000), 512))
    got = []
    stream.decoder.decode = lambda lat: got.append(lat.clone()) or np.zeros((len(lat), 1, 1, 3), np.uint8)
    stream.push_audio(clip.audio[: clip.n_frames * 640])
    stream.flush()
    assert torch.equal(torch.cat(got)[: clip.n_frames].float(), z)
    # and the shipped reader, trained on such latents, follows the clip's jaw
    reader = ControlReader.load(MODELS_DIR / "toon" / "rig.safetensors").eval()
    with torch.no_grad():
        jaw = reader(z, ref)[:, 0].numpy()
    assert np.corrcoef(jaw, y[:, 0].numpy())[0, 1] > 0.6


def test_training_with_student_rollouts_reports_the_student_s_held_out_jaw(tmp_path):
    import json
    from engine.train.train_rig import RigTrainConfig, train
    tc = RigTrainConfig(examples=16, identities=2, steps=3, batch=4, threads=1, heldout=8, heldout_identities=2,
                        rollouts=1, rollout_seconds=1.0, heldout_rollouts=1)
    train(tmp_path, tc, ReaderConfig())
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["student_heldout"]["n"] == 200 and set(metrics["student_heldout"]["mae"]) == set(READ_CONTROLS)


def test_the_app_streams_the_default_cartoon_through_its_rig_and_a_picture_without(ui_home, tmp_path):
    """A session on the shipped model: the library's Default (a cartoon) is rigged; switching to a
    picture avatar (same pixels, no seed) goes back to the learned decoder mid-stream."""
    import wave
    from avatarcam.avatars import AvatarLibrary
    from avatarcam.session import Session
    from avatarcam.stream_options import stream_options
    from tests.fixtures_qt import quiet_settings

    wav = tmp_path / "speech.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        t = np.arange(16000 * 4) / 16000
        w.writeframes((3000 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.int16).tobytes())
    settings = quiet_settings()
    options = stream_options(settings)
    assert options.avatar_name == "Default" and options.avatar_identity is not None
    options.audio_file, options.camera, options.obs = wav, False, False
    session = Session(settings, options)
    session.start()
    try:
        assert session.stream.decoder.rigged
        picture = AvatarLibrary().add_image(AvatarLibrary().get("Default").image_path, name="Flat")
        assert picture.identity() is None
        session.switch_avatar(picture.load_image(), picture.identity())
        assert session.wait(120)
        assert not session.stream.decoder.rigged
    finally:
        session.stop()

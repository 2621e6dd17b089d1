"""The reference-aware decoder: layout, files, the shipped weights keep the portrait, training resumes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.card import MODELS_DIR, load_card
from engine.codecs.decoders import IdleBlinks, build_decoder
from engine.codecs.refdecoder import RefDecoder, RefDecoderConfig, from_patches, to_patches
from engine.stream import AvatarStream
from engine.tools.eval_picture import edge_energy, psnr
from engine.toon import random_identity, render_portrait
from engine.toon.regions import eye_box


def test_patch_layout_round_trips():
    x = torch.randn(2, 3, 32, 32)
    p = to_patches(x, 4)
    assert p.shape == (2, 8, 8, 48)
    assert torch.equal(from_patches(p, 4), x.permute(0, 2, 3, 1))
    assert torch.equal(p[0, 1, 2, :3], x[0, :, 4, 8])       # cell (1, 2) starts at pixel (4, 8)


def test_config_rejects_sizes_that_do_not_multiply_out():
    with pytest.raises(ValueError, match="image_size 500 must be latent_size 16 x 8 x out_patch 4"):
        RefDecoderConfig(image_size=500)


def test_save_load_round_trip_gives_identical_frames(tmp_path):
    torch.manual_seed(0)
    model = RefDecoder(RefDecoderConfig(image_size=128, latent_size=4)).eval()
    model.save(tmp_path / "rd.safetensors")
    again = RefDecoder.load(tmp_path / "rd")
    img, z_ref, z = torch.rand(1, 3, 128, 128) * 2 - 1, torch.randn(1, 12, 4, 4), torch.randn(3, 12, 4, 4)
    a = model.decode(z, model.prepare(img, z_ref))
    b = again.decode(z, again.prepare(img, z_ref))
    assert a.shape == (3, 128, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)


def test_load_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="refdecoder.yaml"):
        RefDecoder.load(tmp_path / "refdecoder.safetensors")


@pytest.mark.parametrize("seed", [100002, 100005])
def test_shipped_decoder_redraws_the_reference_latent_as_the_portrait(seed):
    """Held-out avatars (one with glasses): the reference latent decodes to the portrait, eyes and all."""
    torch.set_num_threads(1)
    decoder = build_decoder(load_card(MODELS_DIR / "toon"), "cpu")
    ident = random_identity(seed)
    portrait = render_portrait(ident, 512)
    z_ref = decoder.encode_image(portrait)
    decoder.reset(z_ref, portrait)
    frame = decoder.decode(z_ref[None])[0]          # the first frames never blink (IdleBlinks waits >= 0.5 s)
    t, b, l, r = eye_box(ident, 512)
    assert psnr(frame, portrait) >= 32.0
    assert edge_energy(frame[t:b, l:r]) >= 0.85 * edge_energy(portrait[t:b, l:r])


def test_a_blink_drive_shuts_the_eyes():
    from engine.tools.eval_picture import Geometry, white_pixels
    torch.set_num_threads(1)
    decoder = build_decoder(load_card(MODELS_DIR / "toon"), "cpu")
    portrait = render_portrait(random_identity(100003), 512)
    z_ref = decoder.encode_image(portrait)
    decoder.reset(z_ref, portrait)
    geo = Geometry.of(100003, 512)
    ref = decoder.ref_decoder
    shut = ref.decode(z_ref[None], decoder._ref, torch.ones(1, 1))[0]
    open_ = ref.decode(z_ref[None], decoder._ref, torch.zeros(1, 1))[0]
    for box in geo.eyes:
        whites = white_pixels(geo.crop(portrait, box))
        assert white_pixels(geo.crop(open_, box)) >= 0.8 * whites
        assert white_pixels(geo.crop(shut, box)) <= 0.5 * whites


def test_shipped_card_streams_512_frames():
    card = load_card(MODELS_DIR / "toon")
    assert (card.width, card.height) == (512, 512)
    stream = AvatarStream(card, seed=0)
    fitted = stream.start(render_portrait(random_identity(7), 512))
    assert fitted.shape == (512, 512, 3)
    frames = stream.push_audio(np.zeros(16000, np.float32)) + stream.flush()
    assert frames and all(f.shape == (512, 512, 3) and f.dtype == np.uint8 for f in frames)


def test_idle_blinks_are_seeded_short_and_every_few_seconds():
    fps = 25.0
    a, b = IdleBlinks(fps, seed=3), IdleBlinks(fps, seed=3)
    track = np.concatenate([a.next(2) for _ in range(int(600 * fps) // 2)])
    assert np.array_equal(track, np.concatenate([b.next(2) for _ in range(int(600 * fps) // 2)]))
    shut = track > 0.5
    onsets = int((shut & ~np.concatenate([[False], shut[:-1]])).sum())
    assert 8 <= onsets / 10 <= 20                                   # per minute over ten minutes
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], shut.astype(int), [0]]))))[::2]
    assert runs.max() <= 4                                           # a blink is shut for < 0.2 s
    a.reset()
    assert np.array_equal(a.next(50), track[:50])


def test_training_writes_weights_and_resumes(tmp_path):
    from engine.train.train_refdecoder import TrainConfig, train
    cfg = RefDecoderConfig()
    tc = TrainConfig(steps=2, batch=2, per_identity=2, threads=1, workers=0, ckpt_every=1)
    train(tmp_path, tc, cfg)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2 and (tmp_path / "refdecoder.safetensors").is_file()
    tc.steps = 3
    train(tmp_path, tc, cfg)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 3

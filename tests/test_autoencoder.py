"""The toon autoencoder: shapes, file round trip, training loop and the shipped weights."""

import json

import numpy as np
import pytest
import torch

from engine.codecs.autoencoder import DEFAULT_WEIGHTS, ToonAutoencoder, ToonAutoencoderConfig, load_default
from engine.train.train_autoencoder import TrainConfig, psnr, render_batch, train

SMALL = ToonAutoencoderConfig(image_size=64, latent_channels=8, enc_channels=(8, 16), dec_channels=(16, 8))


def test_default_config_gives_64_tokens_after_patch_2():
    cfg = ToonAutoencoderConfig()
    assert cfg.image_size == 256 and cfg.latent_size == 16
    assert (cfg.latent_size // 2) ** 2 == 64


def test_round_trip_shapes_and_dtypes():
    torch.manual_seed(0)
    ae = ToonAutoencoder(ToonAutoencoderConfig()).eval()
    imgs = render_batch(0, 2, 256)
    z = ae.encode(imgs)
    assert z.shape == (2, 12, 16, 16) and z.dtype == torch.float32
    out = ae.decode(z)
    assert out.shape == (2, 256, 256, 3) and out.dtype == np.uint8


def test_float_and_uint8_images_encode_alike():
    ae = ToonAutoencoder(SMALL).eval()
    imgs = render_batch(1, 2, 64)
    assert torch.allclose(ae.encode(imgs), ae.encode(imgs.astype(np.float32) / 255.0), atol=1e-5)


def test_save_and_load_give_identical_outputs(tmp_path):
    torch.manual_seed(1)
    ae = ToonAutoencoder(ToonAutoencoderConfig(**{**SMALL.to_dict(), "latent_scale": 2.5, "latent_shift": 0.1})).eval()
    ae.save(tmp_path / "ae.safetensors")
    assert (tmp_path / "ae.yaml").is_file()
    back = ToonAutoencoder.load(tmp_path / "ae.safetensors")
    assert back.cfg == ae.cfg
    imgs = render_batch(2, 2, 64)
    assert torch.equal(back.encode(imgs), ae.encode(imgs))
    z = torch.randn(2, 8, 16, 16)
    assert np.array_equal(back.decode(z), ae.decode(z))


def test_load_rejects_weights_of_another_architecture(tmp_path):
    ToonAutoencoder(SMALL).save(tmp_path / "ae")
    (tmp_path / "ae.yaml").write_text("image_size: 64\nlatent_channels: 4\nenc_channels: [8, 16]\ndec_channels: [16, 8]\n")
    with pytest.raises((ValueError, RuntimeError)):
        ToonAutoencoder.load(tmp_path / "ae")


def test_wrong_image_size_is_rejected():
    with pytest.raises(ValueError, match="64x64"):
        ToonAutoencoder(SMALL).encode(np.zeros((1, 32, 32, 3), np.uint8))


def test_training_writes_losses_and_resumes(tmp_path):
    tc = TrainConfig(steps=2, batch=2, ckpt_every=1)
    train(tmp_path, tc, ToonAutoencoderConfig(**SMALL.to_dict()))
    tc.steps = 3
    train(tmp_path, tc, ToonAutoencoderConfig(**SMALL.to_dict()))
    losses = json.loads((tmp_path / "losses.json").read_text())
    assert [h["step"] for h in losses] == [0, 1, 2]
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["steps"] == 3 and np.isfinite(metrics["psnr_heldout"])
    assert ToonAutoencoder.load(tmp_path / "autoencoder.safetensors").cfg.latent_scale > 0


def test_shipped_weights_reconstruct_held_out_identities():
    ae = load_default()
    imgs = render_batch(123, 4, ae.cfg.image_size, heldout=True)
    z = ae.encode(imgs)
    assert 0.5 < float(z.std()) < 2.0  # scaled to ~unit variance
    rec = ae.decode(z)
    assert np.mean([psnr(a, b) for a, b in zip(imgs, rec)]) > 24.0
    assert DEFAULT_WEIGHTS.stat().st_size < 8 * 1024 * 1024


def test_saved_files_are_readable_by_everyone(tmp_path):
    ToonAutoencoder(SMALL).save(tmp_path / "ae")
    for name in ("ae.safetensors", "ae.yaml"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644

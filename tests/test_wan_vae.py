"""Wan2.1 VAE reimplementation: official key layout, causal cache, streaming decode.

The published weights cannot be downloaded here, so the tests use a tiny random configuration
with the same structure (8x spatial, 4x temporal, 16 latent channels), and check the full-size
layout on the ``meta`` device against ``tests/data/wan_vae_keys.json`` (keys and shapes enumerated
from the official ``WanVAE_`` constructor, independently of ``engine/codecs/wan_vae.py``).
"""
import json
from pathlib import Path

import pytest
import torch

from engine.codecs.wan_vae import (
    WAN21_LATENT_MEAN, WAN21_LATENT_STD, CausalConv3d, ResidualBlock, StreamingDecoder, WanVAE,
    WanVAEConfig, _FeatCache, load_wan_vae,
)

KEYS_FILE = Path(__file__).parent / "data" / "wan_vae_keys.json"


@pytest.fixture(scope="module")
def tiny_vae() -> WanVAE:
    torch.manual_seed(0)
    return WanVAE(WanVAEConfig.tiny()).eval()


@pytest.fixture(scope="module")
def latents() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 6, 16, 2, 3)


def test_full_size_model_has_the_official_keys_and_shapes():
    official = json.loads(KEYS_FILE.read_text())
    with torch.device("meta"):
        model = WanVAE()
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(official["keys"]) - set(ours)) == []
    assert sorted(set(ours) - set(official["keys"])) == []
    assert {k: s for k, s in ours.items() if official["keys"][k] != s} == {}
    assert len(ours) == official["num_tensors"] == 194
    assert sum(v.numel() for v in model.state_dict().values()) == official["num_parameters"] == 126_892_531


def test_decoder_layout_matches_the_public_conversion_tables():
    # Indices that diffusers' Wan VAE converter hard-codes for the original layout.
    keys = json.loads(KEYS_FILE.read_text())["keys"]
    for i in (3, 7):
        assert f"decoder.upsamples.{i}.time_conv.weight" in keys
    assert "decoder.upsamples.11.resample.1.weight" in keys
    assert "decoder.upsamples.11.time_conv.weight" not in keys
    assert "decoder.upsamples.4.shortcut.weight" in keys
    assert keys["decoder.middle.0.residual.0.gamma"] == [384, 1, 1, 1]


def test_normalisation_constants_are_the_wan21_values():
    cfg = WanVAEConfig()
    assert cfg.latent_mean == WAN21_LATENT_MEAN and cfg.latent_std == WAN21_LATENT_STD
    assert (cfg.latent_mean[0], cfg.latent_mean[-1], cfg.latent_std[0], cfg.latent_std[-1]) == (
        -0.7571, -0.2921, 2.8184, 1.9160)
    assert (cfg.spatial_factor, cfg.temporal_factor) == (8, 4)


def test_encode_compresses_8x_in_space_and_4x_in_time(tiny_vae):
    video = torch.rand(1, 9, 3, 16, 24) * 2 - 1
    assert tiny_vae.encode(video).shape == (1, 3, 16, 2, 3)


def test_encode_rejects_a_frame_count_that_is_not_1_plus_4k(tiny_vae):
    with pytest.raises(ValueError, match="T = 1 \\+ 4k"):
        tiny_vae.encode(torch.zeros(1, 4, 3, 16, 16))


def test_t_latents_decode_to_1_plus_4_times_t_minus_1_frames(tiny_vae, latents):
    frames = tiny_vae.decode(latents)
    assert frames.shape == (1, 1 + 4 * (6 - 1), 3, 16, 24)
    assert frames.abs().max() <= 1.0


def test_block_by_block_decode_equals_whole_video_decode(tiny_vae, latents):
    whole = tiny_vae.decode(latents)
    stream = StreamingDecoder(tiny_vae)
    parts = [stream.decode(latents[:, :1]), stream.decode(latents[:, 1:3]), stream.decode(latents[:, 3:])]
    assert [p.shape[1] for p in parts] == [1, 8, 12]
    streamed = torch.cat(parts, dim=1)
    assert whole.std() > 1e-2  # not a degenerate constant output
    assert (streamed - whole).abs().max().item() < 1e-5


def test_the_carried_cache_changes_later_frames(tiny_vae, latents):
    # Without the cache from the first call, the second block decodes differently: the test above is not vacuous.
    stream = StreamingDecoder(tiny_vae)
    stream.decode(latents[:, :1])
    with_cache = stream.decode(latents[:, 1:3])
    stream.reset()
    stream.decode(latents[:, 1:2])  # another "reference" frame
    without = stream.decode(latents[:, 2:3])
    assert (with_cache[:, 4:] - without).abs().max().item() > 1e-3


def test_cached_chunks_equal_one_causal_pass_through_a_residual_block():
    torch.manual_seed(2)
    block = ResidualBlock(4, 6).eval()
    x = torch.randn(1, 4, 7, 5, 5)
    with torch.no_grad():
        one_pass = block(x)
        cache = _FeatCache()
        chunks = []
        for start, stop in ((0, 1), (1, 2), (2, 5), (5, 7)):
            cache.start_chunk()
            chunks.append(block(x[:, :, start:stop], cache))
    assert (torch.cat(chunks, dim=2) - one_pass).abs().max().item() < 1e-5


def test_causal_conv_never_sees_the_future():
    torch.manual_seed(3)
    conv = CausalConv3d(2, 2, 3, padding=1)
    x = torch.randn(1, 2, 5, 4, 4)
    y = x.clone()
    y[:, :, 3:] += 1.0
    with torch.no_grad():
        assert torch.equal(conv(x)[:, :, :3], conv(y)[:, :, :3])


def test_load_round_trips_a_saved_state_dict(tmp_path, tiny_vae, latents):
    path = tmp_path / "vae.pth"
    torch.save(tiny_vae.state_dict(), path)
    loaded = load_wan_vae(path, WanVAEConfig.tiny())
    assert torch.equal(loaded.decode(latents[:, :2]), tiny_vae.decode(latents[:, :2]))


def test_load_names_missing_unexpected_and_misshaped_keys(tmp_path, tiny_vae):
    state = dict(tiny_vae.state_dict())
    del state["decoder.head.2.bias"]
    state["decoder.extra.weight"] = torch.zeros(1)
    state["conv2.weight"] = torch.zeros(3, 3, 1, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        load_wan_vae(path, WanVAEConfig.tiny())
    message = str(err.value)
    assert "1 missing (decoder.head.2.bias)" in message
    assert "1 unexpected (decoder.extra.weight)" in message
    assert "conv2.weight: file (3, 3, 1, 1, 1) vs model (16, 16, 1, 1, 1)" in message


def test_load_accepts_rms_gains_stored_without_singleton_axes(tmp_path, tiny_vae):
    state = {k: (v.flatten() if k.endswith("gamma") else v) for k, v in tiny_vae.state_dict().items()}
    path = tmp_path / "squeezed.pth"
    torch.save(state, path)
    loaded = load_wan_vae(path, WanVAEConfig.tiny())
    assert loaded.decoder.head[0].gamma.shape == (8, 1, 1, 1)

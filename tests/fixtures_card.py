"""A small random-weight model card (DiT + autoencoder + log-mel) for session and CLI tests.

Random weights make noise-like pictures, but every part of the real path runs: card loading, audio
features, sampler, decoder, sinks. Quality is the trained model's business (tests/test_shipped_model.py).
"""
from __future__ import annotations

import pytest
import torch

from engine.card import AudioSpec, BlinkTiming, DecoderSpec, ModelCard, save_card
from engine.codecs.autoencoder import ToonAutoencoder, ToonAutoencoderConfig
from engine.codecs.logmel import LogMelEncoder
from engine.config import ModelConfig, StreamConfig
from engine.model import CausalDiT


def make_card(folder, image_size: int = 64, block_frames: int = 2, reference: bool = False):
    """A random-weight toon card; `reference` adds a random RefDecoder (frames then 32x the latent size)."""
    torch.manual_seed(0)
    ae_cfg = ToonAutoencoderConfig(image_size=image_size, latent_channels=4, enc_channels=(8, 8, 8),
                                   dec_channels=(8, 8, 8))
    ae = ToonAutoencoder(ae_cfg)
    folder.mkdir(parents=True, exist_ok=True)
    ae.save(folder / "autoencoder.safetensors")
    mel = {"n_mels": 8, "context_frames": 2}
    dim = LogMelEncoder(**mel).dim
    model_cfg = ModelConfig(dim=32, num_heads=2, num_layers=2, ffn_dim=64, in_dim=9, out_dim=4, text_dim=0,
                            text_len=0, freq_dim=16, audio_dim=dim, audio_pack=1, audio_hidden=8)
    decoder = DecoderSpec(kind="toon", weights="autoencoder.safetensors")
    size = image_size
    if reference:
        from engine.codecs.refdecoder import RefDecoder, RefDecoderConfig
        latent = ae_cfg.latent_size
        size = latent * 32
        RefDecoder(RefDecoderConfig(image_size=size, latent_channels=4, latent_size=latent)).save(
            folder / "refdecoder.safetensors")
        decoder.reference, decoder.idle_blinks = "refdecoder.safetensors", BlinkTiming(min_s=1.0, max_s=2.0)
    card = ModelCard(name="test-random", model=model_cfg, stream=StreamConfig(block_frames=block_frames),
                     fps=25, width=size, height=size, audio=AudioSpec(encoder="logmel", settings=mel),
                     decoder=decoder,
                     description="random weights for tests")
    save_card(card, folder, CausalDiT(model_cfg))
    return folder


@pytest.fixture(scope="session")
def random_card(tmp_path_factory):
    return make_card(tmp_path_factory.mktemp("card") / "test-random")

"""The DiT's official layout (1.3B on the meta device), the checkpoint loaders, and bad input."""
from __future__ import annotations

import pytest
import torch
import yaml

from engine.card import (MODELS_DIR, AudioSpec, BlinkTiming, DecoderSpec, ModelCard, TextSpec, load_card,
                         save_card)
from engine.checkpoints import CheckpointError, load_weights, merge_lora, read_official_checkpoint
from engine.codecs.wan_vae import WanVAEConfig
from engine.config import ModelConfig, StreamConfig
from engine.model import CausalDiT
from engine.sampler import StreamingSampler

LORA_TARGETS = ["self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2"]


def official_lora_layout(model: CausalDiT, rank: int = 128) -> dict[str, tuple]:
    """The authors' state-dict layout after PEFT injection (spec §2.1), derived from our plain layout."""
    layout = {}
    for key, value in model.state_dict().items():
        parts = key.rsplit(".", 1)
        if any(parts[0].endswith(t) for t in LORA_TARGETS) and parts[0].startswith("blocks."):
            layout[f"{parts[0]}.base_layer.{parts[1]}"] = tuple(value.shape)
            if parts[1] == "weight":
                out_f, in_f = value.shape
                layout[f"{parts[0]}.lora_A.default.weight"] = (rank, in_f)
                layout[f"{parts[0]}.lora_B.default.weight"] = (out_f, rank)
        else:
            layout[key] = tuple(value.shape)
    return layout


def test_paper_model_on_meta_has_the_official_keys_and_sizes():
    with torch.device("meta"):
        model = CausalDiT(ModelConfig.paper())
    state = model.state_dict()
    assert len(state) == 857
    assert sum(v.numel() for v in state.values()) == 1_421_187_232
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["patch_embedding.weight"] == (1536, 33, 1, 2, 2)
    assert shapes["text_embedding.0.weight"] == (1536, 4096)
    assert shapes["time_projection.1.weight"] == (9216, 1536)
    assert shapes["blocks.29.modulation"] == (1, 6, 1536)
    assert shapes["blocks.0.ffn.0.weight"] == (8960, 1536)
    assert shapes["blocks.0.norm3.weight"] == (1536,)
    assert shapes["head.modulation"] == (1, 2, 1536)
    assert shapes["head.head.weight"] == (64, 1536)
    assert shapes["audio_proj.proj.weight"] == (32, 43008)
    assert shapes["audio_proj.norm_out.weight"] == (32,)
    assert shapes["audio_cond_projs.13.weight"] == (1536, 32)
    assert "audio_cond_projs.14.weight" not in shapes
    assert not any(k.startswith(("blocks.0.norm1", "blocks.0.norm2", "head.norm", "img_emb")) for k in shapes)
    lora = official_lora_layout(model)
    assert len(lora) == 1457
    assert sum(torch.Size(s).numel() for s in lora.values()) == 1_596_168_352


def test_official_lora_layout_merges_to_exactly_our_keys_on_meta():
    with torch.device("meta"):
        model = CausalDiT(ModelConfig.paper())
        layout = official_lora_layout(model)
        state = {k: torch.empty(s) for k, s in layout.items()}
    merged = merge_lora(state)
    assert {k: tuple(v.shape) for k, v in merged.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}


def fake_official_checkpoint(model: CausalDiT, path, rank=4, alpha=2.0):
    """An official-style .pt from a tiny model: `model.` prefix, FSDP segments, LoRA adapters."""
    g = torch.Generator().manual_seed(3)
    gen, ema = {}, {}
    for key, shape in official_lora_layout(model, rank).items():
        value = torch.randn(shape, generator=g) * 0.1
        gen[f"model.{key}"] = value
        ema[f"model._fsdp_wrapped_module.{key}"] = value * 2
    torch.save({"generator": gen, "generator_ema": ema}, path)
    return gen


def test_official_pt_loads_with_lora_merged(tmp_path):
    model = CausalDiT(ModelConfig.tiny())
    raw = fake_official_checkpoint(model, tmp_path / "model.pt")
    load_weights(model, tmp_path / "model.pt", lora_alpha=2.0)
    base = raw["model.blocks.1.self_attn.q.base_layer.weight"]
    a, b = raw["model.blocks.1.self_attn.q.lora_A.default.weight"], raw["model.blocks.1.self_attn.q.lora_B.default.weight"]
    assert torch.allclose(model.blocks[1].self_attn.q.weight, base + 0.5 * b @ a, atol=1e-6)
    x = torch.randn(3, 64)
    lora_out = x @ base.T + raw["model.blocks.1.self_attn.q.base_layer.bias"] + 0.5 * (x @ a.T) @ b.T
    assert torch.allclose(model.blocks[1].self_attn.q(x), lora_out, atol=1e-5)
    ema = read_official_checkpoint(tmp_path / "model.pt", use_ema=True, lora_alpha=2.0)
    assert torch.allclose(ema["audio_proj.proj.weight"], 2 * raw["model.audio_proj.proj.weight"])


def test_checkpoint_for_another_architecture_is_one_clear_error(tmp_path):
    fake_official_checkpoint(CausalDiT(ModelConfig.tiny()), tmp_path / "model.pt")
    other = CausalDiT(ModelConfig(dim=64, num_heads=2, num_layers=4, ffn_dim=96, text_dim=32, text_len=16,
                                  freq_dim=32, audio_dim=56, audio_hidden=8))
    with pytest.raises(CheckpointError) as err:
        load_weights(other, tmp_path / "model.pt")
    msg = str(err.value)
    assert "unexpected 56" in msg and "blocks.4." in msg
    assert "wrong shape" in msg and "blocks.0.ffn.0.weight: expected (96, 64), got (128, 64)" in msg


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))
    torch.save({"generator": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights-only"):
        read_official_checkpoint(tmp_path / "evil.pt")


def test_card_round_trip_with_weights(tmp_path):
    model = CausalDiT(ModelConfig.micro())
    card = ModelCard(name="micro", model=ModelConfig.micro(), stream=StreamConfig(block_frames=2), fps=25,
                     width=64, height=64)
    save_card(card, tmp_path / "card", model)
    loaded = load_card(tmp_path / "card")
    assert loaded.model == card.model and loaded.stream == card.stream
    rebuilt = loaded.build()
    for k, v in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v)


def test_card_with_unknown_key_names_it(tmp_path):
    (tmp_path / "model.yaml").write_text("name: x\nmodel: {dim: 32, heads: 2}\nstream: {}\n")
    with pytest.raises(CheckpointError, match="heads"):
        load_card(tmp_path)


def test_every_card_section_round_trips_typed(tmp_path):
    card = ModelCard(name="full", model=ModelConfig.micro(), stream=StreamConfig(block_frames=2), fps=25, width=32,
                     height=32, video_frames_per_latent=4,
                     audio=AudioSpec(encoder="wav2vec2", path="/w2v", settings={"context_frames": 50}),
                     decoder=DecoderSpec(kind="wan", weights="vae.pth", vae=WanVAEConfig.tiny()),
                     text=TextSpec(encoder_id="umt5", weights="t5.pth", tokenizer_dir="tok"))
    save_card(card, tmp_path)
    loaded = load_card(tmp_path)
    assert (loaded.audio, loaded.decoder, loaded.text) == (card.audio, card.decoder, card.text)
    assert loaded.decoder.vae_config == WanVAEConfig.tiny() and DecoderSpec(kind="wan").vae_config == WanVAEConfig()


def test_the_shipped_card_reads_into_sections_and_writes_back_the_same_yaml():
    card = load_card(MODELS_DIR / "toon")
    assert (card.audio.encoder, card.audio.settings["n_mels"], card.audio.lookahead_s) == ("logmel", 32, 0.02)
    assert (card.decoder.weights_file, card.decoder.reference, card.decoder.rig) == \
        ("autoencoder.safetensors", "refdecoder.safetensors", "rig.safetensors")
    assert card.decoder.idle_blinks == BlinkTiming(min_s=2.5, max_s=6.0) and card.text is None
    assert yaml.safe_load(card.to_yaml()) == yaml.safe_load((MODELS_DIR / "toon" / "model.yaml").read_text())


def test_a_card_imported_with_a_text_encoder_sidecar_still_loads(tmp_path):
    """Cards imported before the `text:` section kept the prompt encoder in text_encoder.yaml."""
    card = ModelCard(name="old", model=ModelConfig.tiny(), stream=StreamConfig(), fps=25, width=32, height=32)
    save_card(card, tmp_path)
    (tmp_path / "text_encoder.yaml").write_text(
        "encoder_id: umt5-xxl-wan2.1-bf16\nweights: /wan/umt5.pth\ntokenizer_dir: /wan/google/umt5-xxl\n"
        "model_dir: null\ncache_dir: prompt_cache\n")
    assert load_card(tmp_path).text == TextSpec(encoder_id="umt5-xxl-wan2.1-bf16", weights="/wan/umt5.pth",
                                                tokenizer_dir="/wan/google/umt5-xxl")


@pytest.mark.parametrize("section, named", [
    ("audio: {encoder: mfcc}", "unknown audio encoder 'mfcc'"),
    ("audio: {encoder: wav2vec2}", "needs `path:`"),
    ("decoder: {kind: toon, rigg: rig.safetensors}", "rigg"),
    ("decoder: {kind: gan}", "decoder 'gan' is not available"),
    ("text: {encoder: umt5}", "encoder"),
])
def test_a_card_section_with_a_mistake_names_it(tmp_path, section, named):
    (tmp_path / "model.yaml").write_text(
        f"name: x\nfps: 25\nwidth: 32\nheight: 32\nmodel: {{}}\nstream: {{}}\n{section}\n")
    with pytest.raises(CheckpointError, match=named.replace("(", r"\(")):
        load_card(tmp_path)


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return CausalDiT(ModelConfig.micro()).eval()


def test_wrong_audio_feature_dim_names_expected_and_given(micro):
    s = StreamingSampler(micro, StreamConfig(block_frames=2))
    s.start(torch.randn(4, 4, 4))
    with pytest.raises(ValueError, match=r"must be \(1, 2, 12\).*got \(1, 2, 7\)"):
        s.step(torch.randn(1, 2, 7))


def test_wrong_latent_shape_is_rejected(micro):
    s = StreamingSampler(micro, StreamConfig(block_frames=2))
    with pytest.raises(ValueError, match=r"reference latent must be \(4, h, w\)"):
        s.start(torch.randn(3, 4, 4))
    with pytest.raises(ValueError, match="not divisible by the patch"):
        s.start(torch.randn(4, 5, 4))


def test_step_before_start_is_an_error(micro):
    s = StreamingSampler(micro, StreamConfig(block_frames=2))
    with pytest.raises(RuntimeError, match="start"):
        s.step(torch.randn(2, 12))


def test_text_model_without_context_says_what_it_needs():
    model = CausalDiT(ModelConfig.tiny())
    s = StreamingSampler(model, StreamConfig())
    with pytest.raises(ValueError, match=r"needs a text context of shape \(batch, 16, 32\)"):
        s.start(torch.randn(16, 6, 8))


def test_any_resolution_derives_its_token_count(micro):
    for h, w in [(4, 4), (6, 10), (8, 2)]:
        s = StreamingSampler(micro, StreamConfig(block_frames=1, timesteps=(1000, 500)))
        s.start(torch.randn(4, h, w))
        out = [s.step(torch.randn(1, 12)) for _ in range(3)]
        assert out[-1].shape == (1, 1, 4, h, w)
        assert s.cache.anchor_k[0].shape[1] == (h // 2) * (w // 2)


def test_bad_stream_configs_are_refused():
    with pytest.raises(ValueError, match="strictly decreasing"):
        StreamConfig(timesteps=(200, 400))
    with pytest.raises(ValueError, match="passes"):
        StreamConfig(passes=0)
    with pytest.raises(ValueError, match="in_dim must be"):
        ModelConfig(in_dim=20)

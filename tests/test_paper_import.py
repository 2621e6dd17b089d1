"""Importing and verifying the paper model's downloads, and streaming from the imported card.

The real files (1.3B DiT, Wan VAE, wav2vec2-base, umT5-XXL) cannot be downloaded here, so each
test set is built on the CPU from tiny random configurations in the official layouts: the DiT as
an official `.pt` (`generator` entry, `model.` prefix, PEFT LoRA keys), the Wan VAE state dict,
a wav2vec2 folder saved by transformers (CTC head, as on the hub), a tiny random umT5 encoder
(the same weights as the Wan download's bf16 `.pth` and as an HF folder) and its tokenizer.
Import verifies against the "tiny" preset; the same code verifies "paper" (1.3B).
"""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

from avatarcam.errors import ModelError  # noqa: E402
from avatarcam.model_import import import_model, verify_model  # noqa: E402
from avatarcam.models import format_list, list_models  # noqa: E402
from engine.card import load_card  # noqa: E402
from engine.config import ModelConfig  # noqa: E402
from engine.model import CausalDiT  # noqa: E402
from engine.tools.paper_import import PRESETS, UMT5_FILE, PaperFiles, paper_stream, verify_files  # noqa: E402
from engine.codecs.decoders import WanDecoder  # noqa: E402
from engine.stream import AvatarStream  # noqa: E402
from engine.codecs.text_encoder import HFTextEncoder, encode_prompt  # noqa: E402
from engine.codecs.wan_vae import WanVAE, WanVAEConfig  # noqa: E402
from tests.fixtures_umt5 import random_umt5, wan_umt5_state  # noqa: E402

LORA_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")
SENTENCES = ["a person talking to the camera", "a woman with short hair smiles", "close-up portrait"]
# umT5 sizes whose width is the tiny DiT's cross-attention width; the vocabulary covers the tokenizer's.
TINY_UMT5 = dict(vocab_size=40, d_model=ModelConfig.tiny().text_dim, d_kv=8, num_heads=4, d_ff=32, num_layers=2,
                 relative_attention_num_buckets=8)


def official_dit(cfg: ModelConfig, path, rank: int = 4) -> CausalDiT:
    """Save a DiT the way the authors' trainer does: PEFT-wrapped, under 'generator', prefixed `model.`."""
    torch.manual_seed(0)
    model = CausalDiT(cfg)
    state = {}
    for key, value in model.state_dict().items():
        module, leaf = key.rsplit(".", 1)
        if module.startswith("blocks.") and module.endswith(LORA_TARGETS):
            state[f"model.{module}.base_layer.{leaf}"] = value
            if leaf == "weight":
                state[f"model.{module}.lora_A.default.weight"] = torch.randn(rank, value.shape[1])
                state[f"model.{module}.lora_B.default.weight"] = torch.zeros(value.shape[0], rank)  # PEFT init
        else:
            state[f"model.{key}"] = value
    torch.save({"generator": state, "generator_ema": state}, path)
    return model


def tokenizer_to(path) -> None:
    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 20), model_writer=model_file, vocab_size=40, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        hard_vocab_limit=False, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model_file.getvalue())
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    transformers.T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(path)


def wav2vec_to(path, hidden: int = 14) -> None:
    """(2 layers + 2) * 14 = 56 features per frame = ModelConfig.tiny().audio_dim; base conv strides."""
    torch.manual_seed(0)
    cfg = transformers.Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=16, conv_dim=(8,) * 7, num_conv_pos_embeddings=4,
                                      num_conv_pos_embedding_groups=2, vocab_size=8)
    transformers.Wav2Vec2ForCTC(cfg).save_pretrained(path)
    transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                          return_attention_mask=False).save_pretrained(path)


def make_set(root, dit_cfg: ModelConfig | None = None, vae_cfg: WanVAEConfig | None = None,
             wav2vec_hidden: int = 14, umt5: bool = True) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    official_dit(dit_cfg or ModelConfig.tiny(), root / "model.pt")
    wan = root / "Wan2.1-T2V-1.3B"
    (wan / "google" / "umt5-xxl").mkdir(parents=True)
    torch.manual_seed(1)
    torch.save(WanVAE(vae_cfg or WanVAEConfig.tiny()).state_dict(), wan / "Wan2.1_VAE.pth")
    if umt5:
        torch.save(wan_umt5_state(dtype=torch.bfloat16, **TINY_UMT5), wan / UMT5_FILE)
    tokenizer_to(wan / "google" / "umt5-xxl")
    wav2vec_to(root / "wav2vec2-base-960h", wav2vec_hidden)
    t5 = root / "umt5-encoder"
    tokenizer_to(t5)
    random_umt5(**TINY_UMT5).save_pretrained(t5)
    return {"dit": str(root / "model.pt"), "wan": str(wan), "wav2vec": str(root / "wav2vec2-base-960h"),
            "t5": str(t5)}


def with_umt5(files: dict, state: dict[str, torch.Tensor], root: Path) -> dict:
    """`files` with the Wan folder copied under `root` and its umT5 file replaced by `state`."""
    wan = shutil.copytree(files["wan"], root / "Wan2.1-T2V-1.3B")
    torch.save(state, wan / UMT5_FILE)
    return {**files, "wan": str(wan)}


def paper_files(files: dict) -> PaperFiles:
    return PaperFiles(dit=Path(files["dit"]), wan_dir=Path(files["wan"]), wav2vec_dir=Path(files["wav2vec"]),
                      t5_dir=Path(files["t5"]) if files.get("t5") else None)


def tone(seconds: float) -> np.ndarray:
    """16 kHz mono float32 speech stand-in: a quiet 220 Hz sine."""
    return (0.1 * np.sin(np.arange(int(16000 * seconds)) * 2 * np.pi * 220 / 16000)).astype(np.float32)


@pytest.fixture(scope="module")
def good_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("downloads"))


@pytest.fixture(scope="module")
def imported(good_set, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    folder, report = import_model(**good_set, name="af-tiny", config="tiny", imported_root=root)
    return root, folder, report


def test_a_matching_set_imports_into_a_card_that_loads(imported):
    _, folder, report = imported
    assert report.ok and len(report.checked) == 4
    assert any(c.startswith("umT5 ") and "(2 layers, width 32, bfloat16)" in c for c in report.checked)
    card = load_card(folder)
    model = card.build()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in CausalDiT(ModelConfig.tiny()).parameters())
    assert (card.audio.encoder, card.decoder.kind, card.video_frames_per_latent, card.fps) == ("wav2vec2", "wan", 4, 25)


def test_the_card_points_at_the_downloads_by_absolute_path_without_copying(imported, good_set):
    _, folder, _ = imported
    card = load_card(folder)
    assert card.weights == good_set["dit"] and os.path.isabs(card.decoder.weights)
    assert card.audio.path == good_set["wav2vec"]
    assert sorted(p.name for p in folder.iterdir()) == ["checksums.yaml", "model.yaml"]   # text: in the card


def test_the_card_has_the_paper_stream_settings(imported):
    card = load_card(imported[1])
    s = card.stream
    assert (s.block_frames, s.window_blocks, s.passes, s.timesteps, s.warp, s.shift) == \
        (4, 4, 1, (1000.0, 800.0, 400.0, 200.0), True, 5.0)
    assert card.model == ModelConfig.tiny() and card.stream == paper_stream()


def test_the_paper_preset_is_the_1_3b_architecture_at_832x480():
    p = PRESETS["paper"]
    assert p.model == ModelConfig.paper() and p.vae == WanVAEConfig()
    assert (p.width, p.height, p.default_card_name) == (832, 480, "avatarforcing-1.3b")


def test_a_mismatched_set_gives_one_error_naming_every_problem(tmp_path):
    wrong_dit = ModelConfig(dim=32, num_heads=2, num_layers=2, ffn_dim=64, text_dim=32, text_len=16, freq_dim=32,
                            audio_dim=56, audio_hidden=8)
    files = make_set(tmp_path / "bad", dit_cfg=wrong_dit, vae_cfg=WanVAEConfig(dim=8, dim_mult=(1, 2, 2, 4)),
                     wav2vec_hidden=16, umt5=False)
    with pytest.raises(ModelError) as err:
        import_model(**files, config="tiny", imported_root=tmp_path / "models")
    message = str(err.value)
    assert "4 problem(s)" in message
    for part in ("DiT model.pt", "wrong shape", "Wan VAE", "wav2vec2", "features are 64 wide", "expects 56",
                 "umT5: no file"):
        assert part in message, part
    assert not (tmp_path / "models").exists()


def test_copy_puts_every_file_into_the_card_folder(good_set, tmp_path):
    folder, _ = import_model(**good_set, name="copied", config="tiny", copy=True, imported_root=tmp_path)
    card = load_card(folder)
    assert card.path(card.weights) == folder / "model.pt" and (folder / "model.pt").is_file()
    assert (folder / "wav2vec2" / "config.json").is_file() and (folder / "Wan2.1_VAE.pth").is_file()
    assert verify_model("copied", imported_root=tmp_path).ok


def test_list_shows_shipped_and_imported_models(imported, tmp_path):
    from tests.fixtures_card import make_card
    make_card(tmp_path / "shipped" / "test-random", image_size=32)
    entries = {e.name: e for e in list_models(imported[0], shipped_root=tmp_path / "shipped")}
    assert entries["test-random"].source == "shipped" and entries["af-tiny"].source == "imported"
    assert "32x32 @ 25 fps" in format_list(list(entries.values()))


def test_verify_names_a_file_that_went_missing_after_import(good_set, tmp_path):
    files = {k: shutil.copytree(v, tmp_path / os.path.basename(v)) if os.path.isdir(v)
             else shutil.copy(v, tmp_path / os.path.basename(v)) for k, v in good_set.items()}
    import_model(**{k: str(v) for k, v in files.items()}, name="gone", config="tiny", imported_root=tmp_path / "m")
    os.unlink(tmp_path / "Wan2.1-T2V-1.3B" / "Wan2.1_VAE.pth")
    report = verify_model("gone", imported_root=tmp_path / "m")
    assert not report.ok and len(report.problems) == 1 and "Wan2.1_VAE.pth" in report.problems[0]


def test_wan_decoder_gives_four_frames_per_latent_equal_to_whole_video_decode(imported):
    card = load_card(imported[1])
    decoder = WanDecoder(card, "cpu")
    ref = decoder.encode_image(np.full((40, 50, 3), 128, np.uint8))
    assert ref.shape == (16, 4, 4)
    latents = torch.randn(3, 16, 4, 4, generator=torch.Generator().manual_seed(0))
    decoder.reset(ref)
    frames = np.concatenate([decoder.decode(latents[:2]), decoder.decode(latents[2:])])
    assert frames.shape == (12, 32, 32, 3) and frames.dtype == np.uint8
    whole = decoder.vae.decode(torch.cat([ref[None], latents])[None])[0, 1:]
    expected = ((whole + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1


def test_an_imported_card_streams_frames_from_audio_and_a_prompt(imported):
    card = load_card(imported[1])
    stream = AvatarStream(card)
    stream.start(np.full((32, 32, 3), 90, np.uint8), prompt="a person talking to the camera")
    cache_files = list((imported[1] / "prompt_cache").glob("*.safetensors"))
    assert len(cache_files) == 1
    frames = stream.push_audio(tone(3)) + stream.flush()
    assert len(frames) == 75 // 16 * 16 + 16 and frames[0].shape == (32, 32, 3) and frames[0].dtype == np.uint8


# -- the umT5 file, tensor by tensor ---------------------------------------------------------------
def test_a_umt5_file_narrower_than_the_dit_text_width_stops_the_import(good_set, tmp_path):
    files = with_umt5(good_set, wan_umt5_state(**{**TINY_UMT5, "d_model": 16}), tmp_path)
    with pytest.raises(ModelError) as err:
        import_model(**files, config="tiny", imported_root=tmp_path / "models")
    message = str(err.value)
    assert "1 problem(s)" in message
    assert f"umT5: {UMT5_FILE}: width (d_model) 16, the DiT cross-attends to 32" in message
    assert not (tmp_path / "models").exists()


def test_a_missing_umt5_key_and_a_float64_tensor_are_named_in_one_report(good_set, tmp_path):
    state = wan_umt5_state(dtype=torch.bfloat16, **TINY_UMT5)
    del state["blocks.1.ffn.fc1.weight"]
    state["norm.weight"] = state["norm.weight"].double()
    report = verify_files(paper_files(with_umt5(good_set, state, tmp_path)), "tiny")
    assert len(report.checked) == 3 and len(report.problems) == 2  # DiT, VAE and wav2vec2 fit
    assert "missing 1 key(s): blocks.1.ffn.fc1.weight" in report.problems[0]
    assert report.problems[1].endswith("tensors not in bf16/fp16/fp32: norm.weight (float64)")
    assert "2 problem(s)" in report.text()


def test_a_truncated_umt5_file_is_named(good_set, tmp_path):
    files = with_umt5(good_set, wan_umt5_state(**TINY_UMT5), tmp_path)
    path = Path(files["wan"]) / UMT5_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    report = verify_files(paper_files(files), "tiny")
    assert len(report.problems) == 1 and report.problems[0].startswith(f"umT5: cannot read {path}")


def test_verify_checks_the_umt5_tensors_of_an_imported_card(good_set, tmp_path):
    files = with_umt5(good_set, wan_umt5_state(dtype=torch.bfloat16, **TINY_UMT5), tmp_path)
    import_model(**files, name="swapped", config="tiny", imported_root=tmp_path / "m")
    assert "umT5 2 layers, width 32" in verify_model("swapped", imported_root=tmp_path / "m").text()
    torch.save(wan_umt5_state(**{**TINY_UMT5, "d_model": 16}), Path(files["wan"]) / UMT5_FILE)
    report = verify_model("swapped", imported_root=tmp_path / "m")
    assert len(report.problems) == 1 and "width (d_model) 16" in report.problems[0]


def test_a_card_without_an_hf_umt5_folder_encodes_a_new_prompt_from_the_wan_file(good_set, tmp_path):
    prompt = "a woman with short hair smiles"
    files = {k: v for k, v in good_set.items() if k != "t5"}
    folder, _ = import_model(**files, name="af-wan", config="tiny", imported_root=tmp_path)
    card = load_card(folder)
    spec = card.text
    assert spec.model_dir is None
    stream = AvatarStream(card)
    stream.start(np.full((32, 32, 3), 90, np.uint8), prompt=prompt)
    (cached,) = (folder / "prompt_cache").glob("*.safetensors")
    from safetensors.torch import load_file
    embeds = load_file(cached)["prompt_embeds"]
    want = encode_prompt(prompt, HFTextEncoder(spec.weights, spec.tokenizer_dir, dtype=torch.bfloat16))
    assert torch.equal(embeds, want) and embeds.shape[1] == 32 and bool(embeds.abs().sum() > 0)
    frames = stream.push_audio(tone(1)) + stream.flush()
    assert frames and frames[0].shape == (32, 32, 3) and frames[0].dtype == np.uint8

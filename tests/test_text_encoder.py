"""Prompt embeddings: the authors' cleaning and padding, the on-disk cache, unloading the encoder.

umT5-XXL cannot be downloaded here; the tests build a tiny random ``UMT5EncoderModel`` and a tiny
sentencepiece tokenizer (trained on a few sentences) in a temp folder, loaded with
``local_files_only=True``. Encoder calls are counted on that real model, not on a mock.
"""
import io
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest
import torch

pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")
from transformers import T5Tokenizer, UMT5Config, UMT5EncoderModel  # noqa: E402

from engine.codecs.text_encoder import HFTextEncoder, PromptCache, clean_prompt, encode_prompt  # noqa: E402

SENTENCES = ["a person talking to the camera", "a woman with short hair smiles",
             "the man speaks calmly in a studio", "bright light, soft background, natural colours",
             "close-up portrait of a talking head"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_umt5")
    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 20), model_writer=model_file, vocab_size=48, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        hard_vocab_limit=False, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model_file.getvalue())
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(path)
    torch.manual_seed(0)
    config = UMT5Config(vocab_size=len(vocab), d_model=16, d_kv=4, num_heads=4, d_ff=32, num_layers=2,
                        relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", dropout_rate=0.0)
    UMT5EncoderModel(config).save_pretrained(path)
    return path


@pytest.fixture
def encoder(model_dir):
    return HFTextEncoder(model_dir)


def test_cleaning_unescapes_html_twice_and_collapses_whitespace():
    assert clean_prompt("  a &amp;amp; b\n\t  c  ") == "a & b c"


def test_embedding_has_512_rows_and_zeros_from_the_true_length_on(encoder):
    embeds = encode_prompt("a woman with short hair smiles", encoder)
    length = len(encoder.tokenizer(clean_prompt("a woman with short hair smiles")).input_ids)  # with EOS
    assert embeds.shape == (512, 16)
    assert 1 < length < 512
    assert torch.count_nonzero(embeds[length:]) == 0
    assert bool((embeds[:length].norm(dim=1) > 0).all())


def test_cache_hit_returns_the_identical_tensor_without_calling_the_encoder(tmp_path, encoder):
    cache = PromptCache(tmp_path)
    first = cache.get("a person talking to the camera", encoder.encoder_id, encoder)
    assert encoder.calls == 1
    again = PromptCache(tmp_path).get("a person talking to the camera", encoder.encoder_id, encoder)
    assert encoder.calls == 1
    assert torch.equal(first, again)


def test_the_encoder_is_unloaded_after_encoding(tmp_path, encoder):
    PromptCache(tmp_path).get("close-up portrait of a talking head", encoder.encoder_id, encoder)
    assert encoder.model is None


def test_different_prompts_and_encoders_get_different_keys():
    keys = {PromptCache.key("a man talking", "umt5-a"), PromptCache.key("a woman talking", "umt5-a"),
            PromptCache.key("a man talking", "umt5-b")}
    assert len(keys) == 3


def test_prompts_that_clean_to_the_same_text_share_a_key():
    assert PromptCache.key("a man &amp; a dog", "e") == PromptCache.key("  a man   & a dog ", "e")


def test_different_prompts_give_different_embeddings(tmp_path, encoder):
    cache = PromptCache(tmp_path)
    a = cache.get("a person talking to the camera", encoder.encoder_id, encoder)
    b = cache.get("the man speaks calmly in a studio", encoder.encoder_id, encoder)
    assert encoder.calls == 2
    assert not torch.equal(a, b)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    assert list(tmp_path.glob("*.tmp")) == []  # atomic writes leave nothing behind


def test_a_miss_without_an_encoder_raises_key_error(tmp_path):
    with pytest.raises(KeyError):
        PromptCache(tmp_path).get("never encoded", "umt5-xxl")


def test_the_encoder_loads_from_local_files_only(tmp_path):
    with pytest.raises(OSError):
        HFTextEncoder("google/umt5-xxl")

"""The Wan2.1 umT5 encoder file (``models_t5_umt5-xxl-enc-bf16.pth``) loaded into ``UMT5EncoderModel``.

The real file is 11 GB and cannot be downloaded here. A tiny random HF ``UMT5EncoderModel`` is
written in the Wan layout (keys renamed by ``tests.fixtures_umt5.to_wan``), read back and compared
with the original. Because that round trip would also pass if both directions made the same mistake, a
separate reference forward written here from the Wan layout's definition (RMS norm, per-block
bidirectional bucket bias, unscaled attention, ``fc2(fc1(x) * gelu_tanh(gate0(x)))``) checks what
the Wan tensors mean. The tokenizer is a tiny word-level ``tokenizers`` model built offline.
"""
import math
import os
from types import SimpleNamespace

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
from tokenizers import Tokenizer, models, pre_tokenizers, processors  # noqa: E402
from transformers import AutoTokenizer, PreTrainedTokenizerFast, UMT5EncoderModel  # noqa: E402

from engine.codecs.text_encoder import HFTextEncoder, encode_prompt  # noqa: E402
from engine.codecs.wan_umt5 import (convert_wan_umt5, load_wan_umt5, read_wan_umt5, wan_umt5_config,  # noqa: E402
                             wan_umt5_model)
from tests.fixtures_umt5 import random_umt5, to_wan  # noqa: E402

WORDS = ["hello", "world", "a", "person", "talking", "to", "the", "camera", "smiles"]
SIZES = dict(vocab_size=64, d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=2, relative_attention_num_buckets=32)


@pytest.fixture(scope="module")
def hf_model() -> UMT5EncoderModel:
    return random_umt5(**SIZES)


@pytest.fixture(scope="module")
def wan_state(hf_model) -> dict[str, torch.Tensor]:
    return to_wan(hf_model.state_dict())


@pytest.fixture(scope="module")
def wan_file(wan_state, tmp_path_factory):
    path = tmp_path_factory.mktemp("wan") / "models_t5_umt5-xxl-enc-bf16.pth"
    torch.save(wan_state, path)
    return path


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A word-level tokenizer with umT5's special ids (pad 0, eos 1, unk 2) that appends EOS."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    path = tmp_path_factory.mktemp("tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(path)
    return path


def ids_and_mask(length: int, valid: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, SIZES["vocab_size"], (len(valid), length), generator=gen)
    mask = torch.zeros(len(valid), length, dtype=torch.long)
    for row, n in enumerate(valid):
        mask[row, :n] = 1
        ids[row, n:] = 0
    return ids, mask


# -- a reference forward of the Wan layout, from its definition -------------------------------

def rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def relative_bucket(rel: torch.Tensor, buckets: int, max_distance: int = 128) -> torch.Tensor:
    """Half the buckets per direction (key after query = upper half); exact near, log-spaced far."""
    half = buckets // 2
    exact = half // 2
    dist = rel.abs()
    far = exact + (torch.log(dist.clamp(min=1).float() / exact) / math.log(max_distance / exact)
                   * (half - exact)).long()
    return (rel > 0).long() * half + torch.where(dist < exact, dist, far.clamp(max=half - 1))


def wan_reference(w: dict[str, torch.Tensor], ids: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    x = w["token_embedding.weight"][ids]
    batch, length, _ = x.shape
    pos = torch.arange(length)
    blocked = mask[:, None, None, :] == 0
    split = lambda t: t.view(batch, length, heads, -1).transpose(1, 2)  # noqa: E731
    i = 0
    while f"blocks.{i}.norm1.weight" in w:
        b = {k.removeprefix(f"blocks.{i}."): v for k, v in w.items() if k.startswith(f"blocks.{i}.")}
        h = rms_norm(x, b["norm1.weight"])
        q, k, v = (split(h @ b[f"attn.{n}.weight"].T) for n in "qkv")
        table = b["pos_embedding.embedding.weight"]
        bias = table[relative_bucket(pos[None, :] - pos[:, None], table.shape[0])].permute(2, 0, 1)
        scores = (q @ k.transpose(-1, -2) + bias).masked_fill(blocked, torch.finfo(x.dtype).min)
        x = x + (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, -1) @ b["attn.o.weight"].T
        h = rms_norm(x, b["norm2.weight"])
        x = x + ((h @ b["ffn.fc1.weight"].T) * gelu_tanh(h @ b["ffn.gate.0.weight"].T)) @ b["ffn.fc2.weight"].T
        i += 1
    return rms_norm(x, w["norm.weight"])


# -- loading ----------------------------------------------------------------------------------

def test_the_sizes_are_inferred_from_the_tensor_shapes(wan_state):
    config = wan_umt5_config(wan_state)
    assert (config.vocab_size, config.d_model, config.d_kv, config.num_heads, config.d_ff, config.num_layers,
            config.relative_attention_num_buckets) == tuple(SIZES.values())
    assert config.relative_attention_max_distance == 128 and config.layer_norm_epsilon == 1e-6
    assert config.dense_act_fn == "gelu_new" and config.is_gated_act  # the tanh GELU, gated


def test_the_loaded_model_matches_the_original_with_padding(hf_model, wan_file):
    model = load_wan_umt5(wan_file, dtype=torch.float32)
    ids, mask = ids_and_mask(20, (20, 7))
    with torch.no_grad():
        got = model(input_ids=ids, attention_mask=mask).last_hidden_state
        want = hf_model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(got, want, atol=1e-5)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_the_wan_tensors_mean_what_the_mapping_says(wan_state, wan_file):
    """Longer than max_distance, so exact, log-spaced and clamped buckets are all exercised."""
    model = load_wan_umt5(wan_file, dtype=torch.float32)
    ids, mask = ids_and_mask(150, (150, 90))
    with torch.no_grad():
        got = model(input_ids=ids, attention_mask=mask).last_hidden_state
    want = wan_reference(wan_state, ids, mask, SIZES["num_heads"])
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_the_reference_notices_swapped_feed_forward_branches(wan_state):
    """Guards the guard: with gate.0 and fc1 exchanged the reference output changes."""
    swapped = dict(wan_state)
    for i in range(SIZES["num_layers"]):
        swapped[f"blocks.{i}.ffn.gate.0.weight"], swapped[f"blocks.{i}.ffn.fc1.weight"] = (
            wan_state[f"blocks.{i}.ffn.fc1.weight"], wan_state[f"blocks.{i}.ffn.gate.0.weight"])
    ids, mask = ids_and_mask(12, (12,))
    heads = SIZES["num_heads"]
    assert not torch.allclose(wan_reference(wan_state, ids, mask, heads), wan_reference(swapped, ids, mask, heads),
                              atol=1e-3)


def test_a_bf16_state_is_used_in_place_without_a_copy(wan_state):
    state = {k: v.to(torch.bfloat16) for k, v in wan_state.items()}
    model = wan_umt5_model(state, dtype=torch.bfloat16)
    assert model.shared.weight.data_ptr() == state["token_embedding.weight"].data_ptr()
    assert model.encoder.embed_tokens.weight is model.shared.weight
    assert model.encoder.block[1].layer[1].DenseReluDense.wo.weight.data_ptr() == \
        state["blocks.1.ffn.fc2.weight"].data_ptr()
    assert all(p.dtype == torch.bfloat16 and p.device.type == "cpu" for p in model.parameters())


def test_the_converted_dict_ties_the_embedding_to_one_tensor(wan_state):
    hf = convert_wan_umt5(wan_state)
    assert hf["shared.weight"] is hf["encoder.embed_tokens.weight"] is wan_state["token_embedding.weight"]
    assert hf["encoder.block.1.layer.1.DenseReluDense.wi_0.weight"] is wan_state["blocks.1.ffn.gate.0.weight"]


def test_a_wrapped_module_prefix_is_stripped(wan_state, tmp_path):
    path = tmp_path / "wrapped.pth"
    torch.save({f"module.{k}": v for k, v in wan_state.items()}, path)
    assert sorted(read_wan_umt5(path)) == sorted(wan_state)


# -- errors -----------------------------------------------------------------------------------

def save(state, tmp_path, name="enc.pth"):
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_a_missing_key_is_named(wan_state, tmp_path):
    state = {k: v for k, v in wan_state.items() if k != "blocks.1.ffn.fc1.weight"}
    with pytest.raises(ValueError, match=r"missing 1 key\(s\): blocks\.1\.ffn\.fc1\.weight"):
        load_wan_umt5(save(state, tmp_path), dtype=torch.float32)


def test_an_unexpected_key_is_named(wan_state, tmp_path):
    state = {**wan_state, "blocks.0.attn.extra.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"unexpected key\(s\): blocks\.0\.attn\.extra\.weight"):
        load_wan_umt5(save(state, tmp_path), dtype=torch.float32)


def test_a_file_that_is_not_a_state_dict_is_named(tmp_path):
    path = save([torch.zeros(3)], tmp_path, "list.pth")
    with pytest.raises(ValueError, match=r"list\.pth: not a state dict"):
        read_wan_umt5(path)


def test_a_file_that_torch_cannot_read_safely_is_named(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"garbage\.pth: not a plain torch\.save file"):
        read_wan_umt5(path)


def test_every_problem_is_listed_in_one_error(wan_state):
    state = {k: v for k, v in wan_state.items() if k != "blocks.0.norm2.weight"}
    state["blocks.1.attn.o.weight"] = torch.zeros(32, 16)
    state["pos_embedding.embedding.weight"] = torch.zeros(32, 4)
    with pytest.raises(ValueError) as info:
        wan_umt5_config(state)
    message = str(info.value)
    assert "blocks.0.norm2.weight" in message and "blocks.1.attn.o.weight has shape (32, 16)" in message
    assert "T5 layout" in message and "hint:" in message


# -- the prompt encoder on a Wan file ---------------------------------------------------------

def test_the_tokenizer_folder_loads_offline(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    assert tok("hello world").input_ids == [3, 4, 1] and tok.pad_token_id == 0


def test_encode_prompt_from_a_wan_file_matches_the_hf_model(hf_model, wan_file, tokenizer_dir):
    encoder = HFTextEncoder(wan_file, tokenizer_dir, max_length=8)
    assert encoder.wan_file and encoder.width == 32 and wan_file.name in encoder.encoder_id
    embeds = encode_prompt("hello world", encoder)
    ids = torch.tensor([[3, 4, 1, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        want = hf_model(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[0]
    assert embeds.shape == (8, 32)
    assert torch.count_nonzero(embeds[3:]) == 0 and bool((embeds[:3].norm(dim=1) > 0).all())
    assert torch.allclose(embeds[:3], want[:3], atol=1e-5)
    encoder.unload()
    assert encoder.model is None and encoder.calls == 1


def test_a_wan_file_needs_a_tokenizer_folder(wan_file):
    with pytest.raises(ValueError, match="tokenizer_dir"):
        HFTextEncoder(wan_file)


def test_the_stream_builds_a_bf16_encoder_from_the_card_weights(wan_file, tokenizer_dir):
    import dataclasses

    from engine.card import TextSpec
    from engine.stream import AvatarStream
    stream = AvatarStream.__new__(AvatarStream)  # only the card lookup is exercised
    stream.card, stream.device = SimpleNamespace(path=lambda p: wan_file.parent / p), "cpu"
    spec = TextSpec(encoder_id="umt5-test", weights=str(wan_file), tokenizer_dir=str(tokenizer_dir))
    encoder = stream._text_encoder(spec)
    assert encoder.wan_file and encoder.dtype == torch.bfloat16 and encoder.encoder_id == "umt5-test"
    assert stream._text_encoder(dataclasses.replace(spec, weights="gone.pth")) is None

"""A tiny random umT5 encoder in the Wan2.1 file layout, since the real 11 GB file cannot be downloaded here.

``to_wan`` renames an HF ``UMT5EncoderModel`` state dict to the authors' ``T5Encoder`` names. It is
written here from the Wan layout, independently of ``engine.codecs.wan_umt5``, so that the tests never
check that module's mapping against itself. Import it after ``pytest.importorskip("transformers")``.
"""
from __future__ import annotations

import torch
from transformers import UMT5Config, UMT5EncoderModel

# HF suffix under ``encoder.block.{i}.`` -> Wan suffix under ``blocks.{i}.``
_BLOCK = {"layer.0.layer_norm.weight": "norm1.weight", "layer.0.SelfAttention.q.weight": "attn.q.weight",
          "layer.0.SelfAttention.k.weight": "attn.k.weight", "layer.0.SelfAttention.v.weight": "attn.v.weight",
          "layer.0.SelfAttention.o.weight": "attn.o.weight",
          "layer.0.SelfAttention.relative_attention_bias.weight": "pos_embedding.embedding.weight",
          "layer.1.layer_norm.weight": "norm2.weight", "layer.1.DenseReluDense.wi_0.weight": "ffn.gate.0.weight",
          "layer.1.DenseReluDense.wi_1.weight": "ffn.fc1.weight", "layer.1.DenseReluDense.wo.weight": "ffn.fc2.weight"}


def to_wan(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF UMT5EncoderModel names -> the Wan T5Encoder names (the inverse of the module under test), as copies."""
    wan = {"token_embedding.weight": hf["shared.weight"], "norm.weight": hf["encoder.final_layer_norm.weight"]}
    for key, tensor in hf.items():
        if key.startswith("encoder.block."):
            index, rest = key.removeprefix("encoder.block.").split(".", 1)
            wan[f"blocks.{index}.{_BLOCK[rest]}"] = tensor
    return {k: v.clone() for k, v in wan.items()}


def random_umt5(seed: int = 0, **sizes: int) -> UMT5EncoderModel:
    """A tiny umT5 with every weight random (norms too), so that a swapped or misread tensor changes the output.

    ``sizes`` are ``UMT5Config`` sizes (vocab_size, d_model, d_kv, num_heads, d_ff, num_layers,
    relative_attention_num_buckets); the weights depend on ``seed`` only, not on the global RNG.
    """
    model = UMT5EncoderModel(UMT5Config(**sizes, feed_forward_proj="gated-gelu", dropout_rate=0.0)).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                param.uniform_(0.5, 1.5, generator=gen)
            elif "relative_attention_bias" in name or "shared" in name:
                param.normal_(0.0, 1.0, generator=gen)
            else:
                param.normal_(0.0, 0.2, generator=gen)
    return model


def wan_umt5_state(seed: int = 0, dtype: torch.dtype = torch.float32, **sizes: int) -> dict[str, torch.Tensor]:
    """The Wan-layout state dict of ``random_umt5(seed, **sizes)``, in ``dtype`` (the real file is bf16)."""
    return {k: v.to(dtype) for k, v in to_wan(random_umt5(seed, **sizes).state_dict()).items()}

"""Reading the umT5-XXL encoder that ships with Wan2.1 (``models_t5_umt5-xxl-enc-bf16.pth``).

The Wan download stores the text encoder as a plain ``state_dict`` of the authors' own T5 encoder
module (``token_embedding``, ``blocks.{i}.attn.q`` ...), not as an HF folder. The network is the
same as transformers' ``UMT5EncoderModel`` (RMS norms, unscaled attention, a bidirectional
relative-position bias of its own in every layer, a tanh-GELU gated feed-forward), so the file is
loaded into that class by renaming keys. Nothing is rewritten to disk: the file is memory-mapped
and its tensors are assigned to a model built on the meta device, so a bf16 file loaded as bf16
never exists twice in host memory.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # transformers is imported only when a model is built
    from transformers import UMT5Config, UMT5EncoderModel

log = logging.getLogger(__name__)

MAX_DISTANCE = 128  # umT5's relative-position range; not stored in the file
LAYER_NORM_EPS = 1e-6
_PREFIXES = ("model.", "module.")
_HINT = ("expected the text encoder of the Wan2.1 download (models_t5_umt5-xxl-enc-bf16.pth: the authors' "
         "wan/modules/t5.py T5Encoder with a relative-position bias in every block)")

# Wan key -> HF UMT5EncoderModel key(s). The token embedding feeds two tied HF names.
_TOP_KEYS: dict[str, tuple[str, ...]] = {
    "token_embedding.weight": ("shared.weight", "encoder.embed_tokens.weight"),
    "norm.weight": ("encoder.final_layer_norm.weight",),
}
# Per block: Wan suffix -> HF suffix under ``encoder.block.{i}.``. ``ffn.gate.0`` is the GELU branch
# (HF ``wi_0``), ``ffn.fc1`` the linear branch (HF ``wi_1``).
_BLOCK_KEYS: dict[str, str] = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}
_BLOCK_RE = re.compile(r"blocks\.(\d+)\.(.+)")


def read_wan_umt5(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The file's tensors, memory-mapped, so that reading a multi-GB file (e.g. for its config) is cheap.

    ``weights_only`` keeps a downloaded pickle from running code. A ``model.``/``module.`` prefix on
    every key (a wrapped module was saved) is removed.
    """
    path = Path(path)
    try:
        state = _torch_load(path)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a plain torch.save file of tensors ({first_line}); {_HINT}") from exc
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path}: not a state dict (a mapping of names to tensors), got {type(state).__name__}; "
                         f"{_HINT}")
    if not state:
        raise ValueError(f"{path}: an empty state dict; {_HINT}")
    return _strip_prefix(state)


def _torch_load(path: Path) -> object:
    """``torch.load`` memory-mapped, or whole for a legacy (pre-zip) file that cannot be mapped."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        log.warning("%s cannot be memory-mapped (%s); reading it into memory", path, exc)
        return torch.load(path, map_location="cpu", weights_only=True)


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a prefix that every key shares, left by saving a wrapped (DDP/holder) module."""
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _num_blocks(state: dict[str, torch.Tensor]) -> int:
    """One more than the highest block index, so a missing middle block shows up as missing keys."""
    indices = [int(m.group(1)) for k in state if (m := _BLOCK_RE.fullmatch(k))]
    return max(indices) + 1 if indices else 0


def _dim(state: dict[str, torch.Tensor], key: str, axis: int, ndim: int, problems: list[str]) -> int | None:
    """One size read off a tensor's shape; a problem (not an exception) when the tensor is absent or odd."""
    tensor = state.get(key)
    if tensor is None:
        problems.append(f"missing {key} (needed to infer the model size)")
        return None
    if tensor.dim() != ndim:
        problems.append(f"{key} has shape {tuple(tensor.shape)}, expected {ndim} dimensions")
        return None
    return int(tensor.shape[axis])


def _expected_shapes(vocab: int, dim: int, dim_attn: int, dim_ffn: int, buckets: int, heads: int,
                     layers: int) -> dict[str, tuple[int, ...]]:
    """Every Wan key with the shape it must have, so all tensors are checked, not only the ones sized from."""
    shapes: dict[str, tuple[int, ...]] = {"token_embedding.weight": (vocab, dim), "norm.weight": (dim,)}
    block = {"norm1.weight": (dim,), "attn.q.weight": (dim_attn, dim), "attn.k.weight": (dim_attn, dim),
             "attn.v.weight": (dim_attn, dim), "attn.o.weight": (dim, dim_attn),
             "pos_embedding.embedding.weight": (buckets, heads), "norm2.weight": (dim,),
             "ffn.gate.0.weight": (dim_ffn, dim), "ffn.fc1.weight": (dim_ffn, dim), "ffn.fc2.weight": (dim, dim_ffn)}
    for i in range(layers):
        shapes.update({f"blocks.{i}.{suffix}": shape for suffix, shape in block.items()})
    return shapes


def wan_umt5_config(state: dict[str, torch.Tensor]) -> UMT5Config:
    """The ``UMT5Config`` the tensors describe, every size read from a shape; one error lists all problems.

    Only the sizes are in the file; the rest (GELU-tanh gating, eps 1e-6, max distance 128, no
    dropout) is fixed by the umT5 architecture.
    """
    from transformers import UMT5Config
    problems: list[str] = []
    if "pos_embedding.embedding.weight" in state:
        problems.append("a top-level pos_embedding (one position bias shared by all blocks) is the T5 layout; "
                        "umT5 has one per block (blocks.{i}.pos_embedding)")
    layers = _num_blocks(state)
    if layers == 0:
        problems.append("no blocks.{i}.* keys")
    vocab = _dim(state, "token_embedding.weight", 0, 2, problems)
    dim = _dim(state, "token_embedding.weight", 1, 2, problems)
    dim_attn = _dim(state, "blocks.0.attn.q.weight", 0, 2, problems)
    dim_ffn = _dim(state, "blocks.0.ffn.fc1.weight", 0, 2, problems)
    buckets = _dim(state, "blocks.0.pos_embedding.embedding.weight", 0, 2, problems)
    heads = _dim(state, "blocks.0.pos_embedding.embedding.weight", 1, 2, problems)
    sizes = (vocab, dim, dim_attn, dim_ffn, buckets, heads)
    if None not in sizes:
        if dim_attn % heads:
            problems.append(f"attention width {dim_attn} is not a multiple of the {heads} heads")
        if buckets % 2:
            problems.append(f"{buckets} relative-position buckets cannot be split into two directions")
        problems += _shape_problems(state, _expected_shapes(*sizes, layers))
    if problems:
        problems = list(dict.fromkeys(problems))  # a tensor sized from twice is reported once
        raise ValueError("not a Wan-layout umT5 encoder:\n  " + "\n  ".join(problems) + f"\nhint: {_HINT}")
    return UMT5Config(vocab_size=vocab, d_model=dim, d_kv=dim_attn // heads, d_ff=dim_ffn, num_layers=layers,
                      num_heads=heads, relative_attention_num_buckets=buckets,
                      relative_attention_max_distance=MAX_DISTANCE, feed_forward_proj="gated-gelu",
                      layer_norm_epsilon=LAYER_NORM_EPS, dropout_rate=0.0, use_cache=False)


def _shape_problems(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]) -> list[str]:
    """Missing keys (summarised) and every tensor whose shape disagrees with the inferred sizes."""
    problems = []
    missing = [k for k in expected if k not in state]
    if missing:
        shown = ", ".join(missing[:8]) + (f" (and {len(missing) - 8} more)" if len(missing) > 8 else "")
        problems.append(f"missing {len(missing)} key(s): {shown}")
    for key, shape in expected.items():
        if key in state and tuple(state[key].shape) != shape:
            problems.append(f"{key} has shape {tuple(state[key].shape)}, expected {shape}")
    return problems


def _hf_names(wan_key: str) -> tuple[str, ...] | None:
    """The HF name(s) of one Wan key, or None for a key the umT5 encoder does not have."""
    if wan_key in _TOP_KEYS:
        return _TOP_KEYS[wan_key]
    match = _BLOCK_RE.fullmatch(wan_key)
    if match and match.group(2) in _BLOCK_KEYS:
        return (f"encoder.block.{match.group(1)}.{_BLOCK_KEYS[match.group(2)]}",)
    return None


def convert_wan_umt5(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors under ``UMT5EncoderModel`` names (no copies); unknown keys are an error, not ignored.

    Silently dropping a key would hide a file of another layout whose missing parts then keep
    random values; so the file is validated (``wan_umt5_config``) and every key must map.
    """
    wan_umt5_config(state)
    unexpected = [k for k in state if _hf_names(k) is None]
    if unexpected:
        shown = ", ".join(unexpected[:8]) + (f" (and {len(unexpected) - 8} more)" if len(unexpected) > 8 else "")
        raise ValueError(f"not a Wan-layout umT5 encoder: {len(unexpected)} unexpected key(s): {shown}\nhint: {_HINT}")
    return {hf: tensor for wan, tensor in state.items() for hf in _hf_names(wan)}


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Each tensor in the load dtype; a tensor already in it is returned as is (no copy).

    As ``from_pretrained`` does for T5-family models, the feed-forward output projection stays
    fp32 when loading in fp16, where its activations could overflow.
    """
    def target(key: str) -> torch.dtype:
        return torch.float32 if dtype == torch.float16 and key.endswith("ffn.fc2.weight") else dtype
    return {k: v.to(target(k)) for k, v in state.items()}


def wan_umt5_model(state: dict[str, torch.Tensor], dtype: torch.dtype = torch.bfloat16,
                   device: str | torch.device = "cpu") -> UMT5EncoderModel:
    """A ``UMT5EncoderModel`` holding ``state``'s tensors (Wan names), ready for inference.

    Built on the meta device and filled with ``assign=True``, so no randomly initialised copy is
    ever allocated; tensors already in ``dtype`` on ``device`` are used in place.
    """
    from transformers import UMT5EncoderModel
    config = wan_umt5_config(state)
    weights = convert_wan_umt5(_cast(state, dtype))
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    model.load_state_dict(weights, strict=True, assign=True)
    model.encoder.embed_tokens.weight = model.shared.weight  # one parameter, as the tie means
    model.to(device)
    return model.eval().requires_grad_(False)


def load_wan_umt5(path: str | os.PathLike, dtype: torch.dtype = torch.bfloat16,
                  device: str | torch.device = "cpu") -> UMT5EncoderModel:
    """The Wan2.1 umT5 encoder file as a ``UMT5EncoderModel``, without writing a converted copy."""
    model = wan_umt5_model(read_wan_umt5(path), dtype=dtype, device=device)
    log.info("loaded Wan-layout umT5 encoder %s (%d layers, width %d) as %s on %s", path,
             model.config.num_layers, model.config.d_model, dtype, device)
    return model

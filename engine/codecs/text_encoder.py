"""Prompt embeddings for the paper model: umT5 encoding done once, cached on disk.

The 1.3B model cross-attends to umT5-XXL encoder states, ``(512, 4096)`` per prompt (spec §2.5).
The encoder alone is ~5.7 B parameters, far too much to keep on the GPU next to a live stream, and a
prompt changes rarely. So a prompt is encoded once, with the encoder loaded only for that and
freed right after (``unload``), and the result is kept in a ``PromptCache`` on disk keyed by the
cleaned prompt and the encoder's identity.

Encoding follows the authors: clean the text (ftfy, HTML unescape twice, whitespace collapse),
tokenise to exactly 512 tokens (padding, truncation, EOS), run the encoder, zero every row at and
after the true token count.

The encoder is read from an HF folder (``config.json`` + weights) or straight from the Wan2.1
download's ``models_t5_umt5-xxl-enc-bf16.pth`` (keys renamed on load, see ``wan_umt5``); the
tokenizer folder is then given separately (the download's ``google/umt5-xxl``).
"""
from __future__ import annotations

import gc
import hashlib
import html
import logging
import os
import re
import unicodedata
from pathlib import Path

import torch

from engine.files import atomic_write

log = logging.getLogger(__name__)

try:  # the authors clean with ftfy; it is optional here
    import ftfy
except ImportError:  # pragma: no cover - depends on the environment
    ftfy = None

MAX_LENGTH = 512


def clean_prompt(text: str) -> str:
    """The authors' cleaning: ftfy, ``html.unescape`` twice, strip, collapse whitespace runs.

    Without ftfy the fallback is Unicode NFC normalisation: it does not repair mojibake the way
    ``ftfy.fix_text`` does, so a prompt with broken encoding may tokenise differently (and hash to a
    different cache key) than with ftfy installed.
    """
    text = ftfy.fix_text(text) if ftfy is not None else unicodedata.normalize("NFC", text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def is_wan_file(model_dir: str | os.PathLike) -> bool:
    """Whether ``model_dir`` is a Wan-layout ``.pth`` file rather than an HF folder."""
    path = Path(model_dir)
    return path.is_file() and path.suffix in (".pth", ".pt")


class HFTextEncoder:
    """A tokenizer plus an HF ``UMT5EncoderModel``/``T5EncoderModel``, read from local files only.

    ``model_dir`` is an HF folder, or the Wan2.1 umT5 ``.pth`` (then ``tokenizer_dir`` is required,
    as the file holds no tokenizer). The model is loaded on first use and freed by ``unload()``; a
    later ``encode`` loads it again. ``calls`` counts encoder forward passes (what a cache hit must avoid).
    """

    def __init__(self, model_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 max_length: int = MAX_LENGTH, encoder_id: str | None = None) -> None:
        try:
            from transformers import AutoConfig, AutoTokenizer
        except ImportError as exc:
            raise ImportError("the umT5 text encoder needs `pip install transformers sentencepiece`") from exc
        self.model_dir = os.fspath(model_dir)
        self.wan_file = is_wan_file(model_dir)
        if self.wan_file and tokenizer_dir is None:
            raise ValueError(f"{self.model_dir} is a Wan-layout umT5 file, which holds no tokenizer; pass "
                             "tokenizer_dir (the google/umt5-xxl folder of the Wan2.1 download)")
        self.tokenizer = AutoTokenizer.from_pretrained(os.fspath(tokenizer_dir or model_dir), local_files_only=True)
        if self.wan_file:
            from engine.codecs.wan_umt5 import read_wan_umt5, wan_umt5_config
            self.config = wan_umt5_config(read_wan_umt5(self.model_dir))  # memory-mapped: only shapes are read
        else:
            self.config = AutoConfig.from_pretrained(self.model_dir, local_files_only=True)
        if self.config.model_type not in ("umt5", "t5", "mt5"):
            raise ValueError(f"{self.model_dir}: expected a T5-family encoder, got model_type={self.config.model_type!r}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_length = max_length
        self.encoder_id = encoder_id or (
            f"{self.config.model_type}-d{self.config.d_model}-l{self.config.num_layers}-v{self.config.vocab_size}"
            f"-{Path(self.model_dir).name}-{str(dtype).removeprefix('torch.')}")
        self.model = None
        self.calls = 0

    @property
    def width(self) -> int:
        return self.config.d_model

    def load(self) -> None:
        if self.model is not None:
            return
        if self.wan_file:
            from engine.codecs.wan_umt5 import load_wan_umt5
            self.model = load_wan_umt5(self.model_dir, dtype=self.dtype, device=self.device)
            log.info("loaded text encoder %s on %s", self.encoder_id, self.device)
            return
        from transformers import T5EncoderModel, UMT5EncoderModel
        cls = UMT5EncoderModel if self.config.model_type == "umt5" else T5EncoderModel
        import transformers
        # transformers 5 names the load dtype `dtype`, 4.x `torch_dtype`; loading in the target dtype
        # avoids a full fp32 copy of a bf16 checkpoint in host memory.
        dtype_arg = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        self.model = cls.from_pretrained(self.model_dir, local_files_only=True, **{dtype_arg: self.dtype})
        self.model.to(self.device).eval().requires_grad_(False)
        log.info("loaded text encoder %s on %s", self.encoder_id, self.device)

    @torch.no_grad()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.load()
        self.calls += 1
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device))
        return out.last_hidden_state

    def unload(self) -> None:
        """Drop the weights and give their memory back, so the encoder never sits beside a stream."""
        if self.model is None:
            return
        self.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        log.info("unloaded text encoder %s", self.encoder_id)


def encode_prompt(prompt: str, encoder: HFTextEncoder) -> torch.Tensor:
    """One prompt -> (max_length, width) float32 CPU tensor, zero from the true token count on."""
    tokens = encoder.tokenizer(clean_prompt(prompt), max_length=encoder.max_length, padding="max_length",
                               truncation=True, add_special_tokens=True, return_attention_mask=True,
                               return_tensors="pt")
    states = encoder(tokens.input_ids, tokens.attention_mask)[0].float().cpu()
    length = int(tokens.attention_mask[0].sum())
    states[length:] = 0.0
    return states


class PromptCache:
    """Prompt embeddings on disk as safetensors, one file per (cleaned prompt, encoder id)."""

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.cache_dir = Path(cache_dir)

    @staticmethod
    def key(prompt: str, encoder_id: str) -> str:
        return hashlib.sha256(f"{encoder_id}\0{clean_prompt(prompt)}".encode("utf-8")).hexdigest()

    def path(self, prompt: str, encoder_id: str) -> Path:
        return self.cache_dir / f"{self.key(prompt, encoder_id)}.safetensors"

    def get(self, prompt: str, encoder_id: str, encoder: HFTextEncoder | None = None) -> torch.Tensor:
        """The cached embedding, or encode it with ``encoder`` (then unloaded), store it and return it.

        Raises KeyError on a miss without an encoder, so a caller can tell "not cached" from a failure.
        """
        from safetensors import safe_open
        path = self.path(prompt, encoder_id)
        if path.exists():
            with safe_open(os.fspath(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("encoder_id") == encoder_id and meta.get("prompt") == clean_prompt(prompt):
                    return f.get_tensor("prompt_embeds")
            log.warning("%s does not hold this prompt/encoder; re-encoding", path)
        if encoder is None:
            raise KeyError(f"prompt not cached for encoder {encoder_id!r} and no encoder given to encode it")
        if encoder.encoder_id != encoder_id:
            raise ValueError(f"encoder is {encoder.encoder_id!r} but the cache was asked for {encoder_id!r}")
        try:
            embeds = encode_prompt(prompt, encoder)
        finally:
            encoder.unload()
        self._write(path, embeds, {"encoder_id": encoder_id, "prompt": clean_prompt(prompt)})
        return embeds

    def _write(self, path: Path, embeds: torch.Tensor, metadata: dict[str, str]) -> None:
        from safetensors.torch import save_file
        atomic_write(path, lambda tmp: save_file({"prompt_embeds": embeds.contiguous()}, tmp, metadata=metadata))

"""Importing and verifying the paper model's files (AvatarForcing 1.3B + Wan2.1 + wav2vec2 + umT5).

The user downloads the authors' `model.pt`, the Wan2.1-T2V-1.3B folder and wav2vec2-base-960h;
we never ship them. Import checks every file against the architecture the card describes (tensor
names, shapes and dtypes; the wav2vec2 config; the umT5 files) and reports *every* problem in one
message, then writes a model card folder that points at the files (absolute paths; copies only
when asked: they are gigabytes). The architecture comes from a `Preset`, so the same code
verifies the real 1.3B files ("paper") and the tiny fakes the tests build ("tiny").
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from engine.card import AudioSpec, DecoderSpec, ModelCard, TextSpec, load_card, save_card
from engine.checkpoints import CheckpointError, check_state_dict, read_official_checkpoint
from engine.codecs.wan_umt5 import convert_wan_umt5, read_wan_umt5, wan_umt5_config
from engine.codecs.wan_vae import WanVAE, WanVAEConfig
from engine.codecs.wan_vae import check_state_dict as check_vae_state
from engine.config import SAMPLE_RATE, ModelConfig, StreamConfig
from engine.model import CausalDiT

log = logging.getLogger(__name__)

WAN_VAE_FILE = "Wan2.1_VAE.pth"
UMT5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
UMT5_TOKENIZER = "google/umt5-xxl"
DEFAULT_ENCODER_ID = "umt5-xxl-wan2.1-bf16"
FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Heads of wav2vec2 checkpoints that the feature encoder does not use (CTC / pre-training).
WAV2VEC_IGNORED = ("lm_head.", "quantizer.", "project_q.", "project_hid.")
WAV2VEC_OPTIONAL = ("masked_spec_embed",)   # only used for masking in training


@dataclass(frozen=True)
class Preset:
    """An architecture to verify against, and the card settings that go with it."""

    name: str
    model: ModelConfig
    vae: WanVAEConfig
    width: int
    height: int
    umt5_min_bytes: int
    default_card_name: str


PRESETS: dict[str, Preset] = {
    # The released umT5-XXL encoder in bf16 is about 11.4 GB; anything far smaller is a broken download.
    "paper": Preset("paper", ModelConfig.paper(), WanVAEConfig(), 832, 480, 10 * 1024 ** 3, "avatarforcing-1.3b"),
    "tiny": Preset("tiny", ModelConfig.tiny(), WanVAEConfig.tiny(), 32, 32, 1, "avatarforcing-tiny"),
}


def paper_stream() -> StreamConfig:
    """The paper's stream: B = 4, L = 4 levels 1000/800/400/200 warped through shift 5, N = 1."""
    return StreamConfig(block_frames=4, timesteps=(1000, 800, 400, 200), passes=1, warp=True, shift=5.0)


@dataclass
class PaperFiles:
    """The user's downloads. `t5_dir` is an optional HF-format umT5 encoder folder (for new prompts)."""

    dit: Path
    wan_dir: Path
    wav2vec_dir: Path
    t5_dir: Path | None = None

    def __post_init__(self) -> None:
        self.dit = Path(self.dit).expanduser().resolve()
        self.wan_dir = Path(self.wan_dir).expanduser().resolve()
        self.wav2vec_dir = Path(self.wav2vec_dir).expanduser().resolve()
        self.t5_dir = Path(self.t5_dir).expanduser().resolve() if self.t5_dir else None

    @property
    def vae(self) -> Path:
        return self.wan_dir / WAN_VAE_FILE

    @property
    def umt5(self) -> Path:
        return self.wan_dir / UMT5_FILE

    @property
    def tokenizer(self) -> Path:
        return self.wan_dir / UMT5_TOKENIZER


@dataclass
class Report:
    """What was checked and every problem found; `text()` is the one message a user reads."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [f"ok  {c}" for c in self.checked]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def raise_if_problems(self, what: str) -> None:
        if self.problems:
            raise CheckpointError(f"{what}: {len(self.problems)} problem(s)\n" +
                                  "\n".join(f"  - {p}" for p in self.problems))


def _dtype_names(tensors: Mapping[str, torch.Tensor]) -> str:
    return ", ".join(sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()}))


def _non_float(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    return sorted(f"{k} ({str(v.dtype).removeprefix('torch.')})" for k, v in tensors.items()
                  if v.dtype not in FLOAT_DTYPES)


def _few(items: list[str], n: int = 6) -> str:
    return ", ".join(items[:n]) + (f" ... (+{len(items) - n} more)" if len(items) > n else "")


def _accept_floats(report: Report, label: str, path: Path, state: Mapping[str, torch.Tensor], note: str = "") -> None:
    """The last check of a weights file whose names and shapes fit: every tensor is floating point."""
    bad = _non_float(state)
    if bad:
        report.problems.append(f"{label} {path.name}: non-float tensors {_few(bad)}")
    else:
        report.checked.append(f"{label} {path} ({len(state)} tensors{note}, {_dtype_names(state)})")


# -- one check per component ------------------------------------------------------------------------
def check_dit(path: Path, cfg: ModelConfig, report: Report) -> None:
    """The authors' `model.pt` (or our safetensors) against a meta-device DiT of `cfg`."""
    if not path.is_file():
        report.problems.append(f"DiT: no file at {path} (the AvatarForcing checkpoint, checkpoints/model.pt)")
        return
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = read_official_checkpoint(path)
    except CheckpointError as exc:
        report.problems.append(f"DiT: {exc}")
        return
    except Exception as exc:  # a damaged safetensors file
        report.problems.append(f"DiT: {path} is not a readable safetensors file ({type(exc).__name__}: {exc})")
        return
    with torch.device("meta"):
        model = CausalDiT(cfg)
    try:
        check_state_dict(model, state, what=f"DiT {path.name}")
    except CheckpointError as exc:
        report.problems.append(_indent(exc))
        return
    _accept_floats(report, "DiT", path, state, " after LoRA merge")


def check_vae(path: Path, cfg: WanVAEConfig, report: Report) -> None:
    if not path.is_file():
        report.problems.append(f"Wan VAE: no file at {path} (expected {WAN_VAE_FILE} in the Wan2.1-T2V-1.3B folder)")
        return
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        report.problems.append(f"Wan VAE: cannot read {path} as a weights-only torch file ({exc})")
        return
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        report.problems.append(f"Wan VAE: {path} is not a state dict of tensors")
        return
    with torch.device("meta"):
        model = WanVAE(cfg)
    try:
        check_vae_state(model, state)
    except ValueError as exc:
        report.problems.append(f"Wan VAE {path.name}: {exc}")
        return
    _accept_floats(report, "Wan VAE", path, state)


def _wav2vec_key(key: str) -> str:
    key = key.removeprefix("wav2vec2.")
    return key.replace(".weight_g", ".parametrizations.weight.original0").replace(
        ".weight_v", ".parametrizations.weight.original1")


def _wav2vec_shapes(folder: Path) -> tuple[dict[str, tuple[tuple[int, ...], str]], str] | None:
    """Names -> (shape, dtype) of a wav2vec2 folder's weights without loading them, and the file used."""
    st, binary = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.is_file():
        from safetensors import safe_open
        with safe_open(str(st), framework="pt") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), str(f.get_slice(k).get_dtype())) for k in f.keys()}, st.name
    if binary.is_file():
        state = torch.load(str(binary), map_location="cpu", weights_only=True, mmap=True)
        return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}, binary.name
    return None


def check_wav2vec(folder: Path, audio_dim: int, report: Report) -> None:
    """wav2vec2-base-960h: config (post-LN base, feature width = the DiT's audio_dim), extractor, weights."""
    if not folder.is_dir():
        report.problems.append(f"wav2vec2: no folder at {folder} (wav2vec2-base-960h, with config.json)")
        return
    try:
        from transformers import Wav2Vec2Config, Wav2Vec2Model
    except ImportError:
        report.problems.append("wav2vec2: the paper model needs transformers: pip install 'avatarcam[paper]'")
        return
    from engine.codecs.wav2vec import feature_dim
    problems = []
    try:
        cfg = Wav2Vec2Config.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        report.problems.append(f"wav2vec2: cannot read {folder / 'config.json'} ({exc})")
        return
    if cfg.model_type != "wav2vec2":
        problems.append(f"config model_type is {cfg.model_type!r}, expected 'wav2vec2'")
    if cfg.do_stable_layer_norm:
        problems.append("config is a pre-LN ('stable layer norm') wav2vec2, not the base model the paper used")
    if feature_dim(cfg) != audio_dim:
        problems.append(f"features are {feature_dim(cfg)} wide ((layers + 2) x hidden), the DiT expects {audio_dim}")
    pre = folder / "preprocessor_config.json"
    if not pre.is_file():
        problems.append(f"no {pre.name} (the feature extractor settings)")
    else:
        import json
        settings = json.loads(pre.read_text())
        if settings.get("sampling_rate") != SAMPLE_RATE:
            problems.append(f"{pre.name}: sampling_rate {settings.get('sampling_rate')}, expected {SAMPLE_RATE}")
        if not settings.get("do_normalize", False):
            problems.append(f"{pre.name}: do_normalize is false; the paper's features are normalised")
    found = _wav2vec_shapes(folder)
    if found is None:
        problems.append("no weights (model.safetensors or pytorch_model.bin)")
    else:
        shapes, weights_file = found
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in Wav2Vec2Model(cfg).state_dict().items()}
        have = {_wav2vec_key(k): v for k, v in shapes.items() if not k.startswith(WAV2VEC_IGNORED)}
        missing = sorted(k for k in set(expected) - set(have) if k not in WAV2VEC_OPTIONAL)
        unexpected = sorted(set(have) - set(expected))
        wrong = sorted(f"{k}: file {have[k][0]} vs model {expected[k]}" for k in set(have) & set(expected)
                       if have[k][0] != expected[k])
        non_float = sorted(k for k, (_, dt) in have.items() if dt.lower() not in ("f32", "bf16", "f16", "float32",
                                                                                  "bfloat16", "float16"))
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong),
                             ("non-float", non_float)):
            if items:
                problems.append(f"{weights_file}: {len(items)} {label}: {_few(items)}")
    if problems:
        report.problems += [f"wav2vec2 {folder}: {p}" for p in problems]
    else:
        report.checked.append(f"wav2vec2 {folder} ({feature_dim(cfg)} features per video frame)")


def _indent(exc: Exception) -> str:
    """A multi-line error as one report entry whose later lines sit under its bullet."""
    return str(exc).replace("\n", "\n    ")


def check_umt5_weights(path: Path, text_dim: int, report: Report) -> str | None:
    """The Wan umT5 .pth's tensor names, shapes and dtypes against the umT5 architecture and the DiT.

    Returns "N layers, width W, dtypes" when everything fits, else None with every problem in
    `report`. The file is memory-mapped and only shapes and dtypes are looked at, so checking the
    11 GB download reads little more than its index.
    """
    if importlib.util.find_spec("transformers") is None:  # wan_umt5_config builds a transformers UMT5Config
        report.problems.append("umT5: the paper model needs transformers: pip install 'avatarcam[paper]'")
        return None
    try:
        state = read_wan_umt5(path)
    except ValueError as exc:  # not a plain state dict of tensors; the message names the path
        report.problems.append(f"umT5: {_indent(exc)}")
        return None
    except Exception as exc:  # a truncated zip, a foreign format ...: one entry, not a crash of the report
        report.problems.append(f"umT5: cannot read {path} as a weights-only torch file ({exc})")
        return None
    before = len(report.problems)
    config = None
    try:
        config = wan_umt5_config(state)
        convert_wan_umt5(state)  # every key must belong to the encoder
    except ValueError as exc:
        report.problems.append(f"umT5: {path.name}: {_indent(exc)}")
    if config is not None and config.d_model != text_dim:
        report.problems.append(f"umT5: {path.name}: width (d_model) {config.d_model}, the DiT cross-attends to "
                               f"{text_dim}")
    bad = _non_float(state)
    if bad:
        report.problems.append(f"umT5: {path.name}: tensors not in bf16/fp16/fp32: {_few(bad)}")
    if config is None or len(report.problems) > before:
        return None
    return f"{config.num_layers} layers, width {config.d_model}, {_dtype_names(state)}"


def check_umt5(files: PaperFiles, text_dim: int, min_bytes: int, report: Report) -> None:
    """umT5-XXL: the Wan .pth (size, then every tensor); the tokenizer folder; an HF encoder if given."""
    before = len(report.problems)
    weights = None
    if not files.umt5.is_file():
        report.problems.append(f"umT5: no file at {files.umt5} (part of the Wan2.1-T2V-1.3B download)")
    elif files.umt5.stat().st_size < min_bytes:
        report.problems.append(f"umT5: {files.umt5} is {files.umt5.stat().st_size:,} bytes, expected at least "
                               f"{min_bytes:,} (an interrupted download?)")
    else:
        weights = check_umt5_weights(files.umt5, text_dim, report)
    if not files.tokenizer.is_dir() or not any(files.tokenizer.iterdir()):
        report.problems.append(f"umT5 tokenizer: no folder (or an empty one) at {files.tokenizer}")
    if files.t5_dir is not None:
        config = files.t5_dir / "config.json"
        if not config.is_file():
            report.problems.append(f"umT5 encoder: no config.json in {files.t5_dir} (an HF-format umT5 encoder folder)")
        else:
            import json
            data = json.loads(config.read_text())
            if data.get("model_type") not in ("umt5", "t5", "mt5"):
                report.problems.append(f"umT5 encoder {files.t5_dir}: model_type {data.get('model_type')!r}, "
                                       "expected umt5")
            if data.get("d_model") != text_dim:
                report.problems.append(f"umT5 encoder {files.t5_dir}: d_model {data.get('d_model')}, the DiT "
                                       f"cross-attends to {text_dim}")
    if len(report.problems) == before:
        report.checked.append(f"umT5 {files.umt5} ({weights}) and tokenizer {files.tokenizer}"
                              + (f", encoder {files.t5_dir}" if files.t5_dir else ""))


def verify_files(files: PaperFiles, preset: str | Preset = "paper") -> Report:
    """Check every downloaded file against the preset's architecture; never stops at the first problem."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    report = Report()
    check_dit(files.dit, p.model, report)
    check_vae(files.vae, p.vae, report)
    check_wav2vec(files.wav2vec_dir, p.model.audio_dim, report)
    if p.model.has_text:
        check_umt5(files, p.model.text_dim, p.umt5_min_bytes, report)
    return report


# -- cards ---------------------------------------------------------------------------------------------
def _copy_into(src: Path, dest: Path) -> None:
    """Copy a file or a folder so that `dest` appears whole or not at all."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        staged = tmp / dest.name
        shutil.copytree(src, staged) if src.is_dir() else shutil.copyfile(src, staged)
        if dest.is_dir():
            shutil.rmtree(dest)
        os.replace(staged, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def import_paper(files: PaperFiles, models_dir: str | os.PathLike, name: str | None = None,
                 preset: str = "paper", copy: bool = False) -> tuple[Path, Report]:
    """Verify the files, then write `<models_dir>/<name>/model.yaml` pointing at them (or at copies).

    Raises CheckpointError listing every problem; nothing is written unless everything checks out.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {preset!r}")
    p = PRESETS[preset]
    report = verify_files(files, p)
    report.raise_if_problems("cannot import the paper model")
    name = name or p.default_card_name
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"model name must be a plain folder name, got {name!r}")
    folder = Path(models_dir).expanduser() / name
    paths = {"dit": files.dit, "vae": files.vae, "wav2vec": files.wav2vec_dir, "umt5": files.umt5,
             "tokenizer": files.tokenizer, "t5": files.t5_dir}
    if copy:
        local = {"dit": "model.pt", "vae": WAN_VAE_FILE, "wav2vec": "wav2vec2", "umt5": UMT5_FILE,
                 "tokenizer": "umt5-tokenizer", "t5": "umt5-encoder"}
        for key, src in list(paths.items()):
            if src is None or (key in ("umt5", "tokenizer", "t5") and not p.model.has_text):
                continue
            log.info("copying %s -> %s", src, folder / local[key])
            _copy_into(src, folder / local[key])
            paths[key] = Path(local[key])
    text = None
    if p.model.has_text:
        text = TextSpec(encoder_id=DEFAULT_ENCODER_ID, weights=str(paths["umt5"]),
                        tokenizer_dir=str(paths["tokenizer"]),
                        model_dir=str(paths["t5"]) if paths["t5"] is not None else None)
    card = ModelCard(
        name=name, model=p.model, stream=paper_stream(), weights=str(paths["dit"]), fps=25.0,
        width=p.width, height=p.height, video_frames_per_latent=4,
        audio=AudioSpec(encoder="wav2vec2", path=str(paths["wav2vec"])),
        decoder=DecoderSpec(kind="wan", weights=str(paths["vae"]), vae=p.vae), text=text,
        description=f"AvatarForcing ({preset} architecture) imported from {files.dit}")
    save_card(card, folder)
    log.info("imported %s into %s", name, folder)
    return folder, report


def verify_card(folder: str | os.PathLike) -> Report:
    """Re-check a card's files against the card's own architecture (shipped or imported)."""
    report = Report()
    try:
        card = load_card(folder)
    except CheckpointError as exc:
        report.problems.append(str(exc))
        return report
    report.checked.append(f"card {card.root / 'model.yaml'}")
    _verify_checksums(card, report)
    check_dit(card.path(card.weights), card.model, report)
    if card.decoder.kind == "wan":
        check_vae(card.path(card.decoder.weights_file), card.decoder.vae_config, report)
    else:
        weights = card.path(card.decoder.weights_file)
        if not weights.is_file():
            report.problems.append(f"decoder: no file at {weights}")
        else:
            problem = _safetensors_problem(weights)
            (report.problems.append(f"decoder: {problem}") if problem
             else report.checked.append(f"decoder {weights}"))
    if card.audio.encoder == "wav2vec2":
        check_wav2vec(card.path(card.audio.path), card.model.audio_dim, report)
    if card.model.has_text:
        if card.text is None:
            report.problems.append(f"the model cross-attends to text but {card.root / 'model.yaml'} has no `text:` "
                                   "section (the prompt encoder's files)")
        else:
            _verify_text_spec(card, card.text, report)
    return report


def _verify_checksums(card: ModelCard, report: Report) -> None:
    """Every file the card's checksums list, hashed in full (loading hashes only files up to 512 MB)."""
    import time
    from engine.checksums import CHECKSUM_FILE, check_checksums, read_checksums, regenerate_hint
    try:
        listed = read_checksums(card.root)
    except ValueError as exc:
        report.problems.append(str(exc))
        return
    if listed is None:
        report.checked.append(f"no {CHECKSUM_FILE}: file contents not checked (add one: "
                              f"`{regenerate_hint(card.root)}`)")
        return
    t0 = time.perf_counter()
    problems = check_checksums(card.root, deep=True)
    report.problems += problems
    if not problems:
        report.checked.append(f"checksums: {len(listed)} files match {CHECKSUM_FILE} "
                              f"(sha256, {time.perf_counter() - t0:.2f} s)")


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable safetensors file (its header and tensor sizes), or None."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                f.get_slice(key).get_shape()
    except Exception as exc:
        return f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc})"
    return None


def _verify_text_spec(card: ModelCard, spec: TextSpec, report: Report) -> None:
    """The card's text encoder files exist, and its Wan umT5 .pth still fits the DiT tensor by tensor."""
    before = len(report.problems)
    for key in ("weights", "tokenizer_dir", "model_dir"):
        value = getattr(spec, key)
        if value and not card.path(value).exists():
            report.problems.append(f"text encoder {key}: {card.path(value)} does not exist")
    weights = card.path(spec.weights) if spec.weights else None
    summary = None
    if weights is not None and weights.is_file():
        summary = check_umt5_weights(weights, card.model.text_dim, report)
    if len(report.problems) == before:
        report.checked.append(f"text encoder files ({spec.encoder_id}"
                              + (f"; umT5 {summary}" if summary else "") + ")")

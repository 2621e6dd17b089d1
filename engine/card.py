"""The model card: one folder whose `model.yaml` says what the weights are and how to stream them.

Sections, each a dataclass, so a misspelt key is named when the card loads instead of ignored:

- `model`: the DiT's architecture (`ModelConfig`); `stream`: how the sampler walks it (`StreamConfig`);
- `audio`: which encoder turns PCM into the model's features (`AudioSpec`);
- `decoder`: which network turns latents back into pictures (`DecoderSpec`);
- `text`: where the prompt encoder and its cache are (`TextSpec`), for a model that reads a prompt.

A path in a card is relative to its folder unless absolute (an imported card points at the user's
downloads). Cards imported before the `text` section existed keep it in a sidecar
`text_encoder.yaml` beside `model.yaml`; they load as they are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .checkpoints import CheckpointError, load_weights, save_weights
from .codecs.wan_vae import WanVAEConfig
from .config import ModelConfig, StreamConfig, from_dict, to_dict
from .files import atomic_write_text
from .model import CausalDiT

MODELS_DIR = Path(__file__).resolve().parent / "models"   # the cards that ship in the package
CARD_FILE = "model.yaml"
LEGACY_TEXT_FILE = "text_encoder.yaml"
AUDIO_ENCODERS = ("logmel", "wav2vec2")
DECODER_WEIGHTS = {"toon": "autoencoder.safetensors", "wan": "Wan2.1_VAE.pth"}   # kind -> default file


def _mapping(data: Any, section: str) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"the `{section}:` section must be a mapping, got {type(data).__name__}")
    return dict(data)


@dataclass
class AudioSpec:
    """How the model hears: `logmel` (ours, no weights) or `wav2vec2` (the paper's; `path` is its folder).

    `settings` are the encoder's own keyword arguments (log-mel: `n_mels`, `hop_ms`, `lookahead_ms`
    ...; wav2vec2: `context_frames`, `lookahead_frames`). The card writes them flat beside `encoder`.
    """

    encoder: str = "logmel"
    path: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.encoder not in AUDIO_ENCODERS:
            raise ValueError(f"unknown audio encoder {self.encoder!r} (known: {', '.join(AUDIO_ENCODERS)})")
        if self.encoder == "wav2vec2" and not self.path:
            raise ValueError("the wav2vec2 audio encoder needs `path:` (its model folder)")

    @classmethod
    def from_yaml(cls, data: Any) -> AudioSpec:
        settings = _mapping(data, "audio")
        return cls(encoder=settings.pop("encoder", "logmel"), path=settings.pop("path", None), settings=settings)

    def to_yaml(self) -> dict:
        out: dict[str, Any] = {"encoder": self.encoder}
        if self.path is not None:
            out["path"] = self.path
        return {**out, **self.settings}

    @property
    def lookahead_s(self) -> float:
        """Seconds of future audio the encoder reads per frame (log-mel's `lookahead_ms`; wav2vec2: 0 here)."""
        if self.encoder != "logmel":
            return 0.0
        from .codecs.logmel import DEFAULT_LOOKAHEAD_MS
        return float(self.settings.get("lookahead_ms", DEFAULT_LOOKAHEAD_MS)) / 1000.0


@dataclass
class BlinkTiming:
    """Seconds between the idle blinks a stream adds (`engine.codecs.decoders.IdleBlinks`)."""

    min_s: float = 2.5
    max_s: float = 6.0


@dataclass
class DecoderSpec:
    """How latents become pictures.

    `toon`: our per-frame autoencoder (`weights`), with the reference-aware decoder (`reference`)
    and the cartoon rig's control reader (`rig`) when the card has them; `idle_blinks` sets the
    blinks added while one of those two draws. `wan`: the Wan2.1 VAE (`weights`, its `.pth`), sized
    by `vae` (the published VAE when absent). A missing `weights` is the kind's usual file name.
    """

    kind: str = "toon"
    weights: str | None = None
    reference: str | None = None
    rig: str | None = None
    idle_blinks: BlinkTiming | None = None
    vae: WanVAEConfig | None = None

    def __post_init__(self) -> None:
        if self.kind not in DECODER_WEIGHTS:
            raise ValueError(f"decoder '{self.kind}' is not available in this build "
                             f"(known: {', '.join(DECODER_WEIGHTS)})")

    @property
    def weights_file(self) -> str:
        return self.weights or DECODER_WEIGHTS[self.kind]

    @property
    def vae_config(self) -> WanVAEConfig:
        return self.vae if self.vae is not None else WanVAEConfig()

    @classmethod
    def from_yaml(cls, data: Any) -> DecoderSpec:
        spec = _mapping(data, "decoder")
        blinks = _mapping(spec.pop("idle_blinks", None), "decoder.idle_blinks")
        vae = spec.pop("vae", None)
        if vae is not None:
            sizes = _mapping(vae, "decoder.vae").items()
            vae = WanVAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in sizes})
        out = from_dict(cls, spec)
        out.idle_blinks = from_dict(BlinkTiming, blinks) if blinks else None
        out.vae = vae
        return out

    def to_yaml(self) -> dict:
        out: dict[str, Any] = {"kind": self.kind}
        for name in ("weights", "reference", "rig"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.idle_blinks is not None:
            out["idle_blinks"] = to_dict(self.idle_blinks)
        if self.vae is not None:   # the latent statistics are the published VAE's, not a setting
            out["vae"] = {k: v for k, v in to_dict(self.vae).items() if k not in ("latent_mean", "latent_std")}
        return out


@dataclass
class TextSpec:
    """The prompt encoder (umT5) of a model that cross-attends to text, and where its prompts are cached.

    An HF-format encoder folder (`model_dir`) wins; otherwise the Wan download's `.pth` (`weights`)
    with its tokenizer folder (`tokenizer_dir`). `encoder_id` keys the cache, so a prompt is
    encoded once per encoder; with neither file present, cached prompts still work.
    """

    encoder_id: str | None = None
    weights: str | None = None
    tokenizer_dir: str | None = None
    model_dir: str | None = None
    cache_dir: str = "prompt_cache"


@dataclass
class ModelCard:
    """A model folder: architecture, stream settings, codecs and where the weights are.

    The size fields have no defaults: the toon card (256-512 px, one video frame per latent frame)
    and the paper's 1.3B card (832x480, four per latent frame, `ModelConfig`'s own defaults) share
    nothing a default could pick. The codec sections default to ours (log-mel, the toon
    autoencoder), which need no downloaded weights.
    """

    name: str
    model: ModelConfig
    stream: StreamConfig
    fps: float
    width: int
    height: int
    weights: str = "model.safetensors"
    video_frames_per_latent: int = 1
    audio: AudioSpec = field(default_factory=AudioSpec)
    decoder: DecoderSpec = field(default_factory=DecoderSpec)
    text: TextSpec | None = None
    description: str = ""
    root: Path = Path(".")

    def path(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    def weight_files(self) -> list[Path]:
        """Every network file the stream loads: the DiT, the audio encoder's folder, the decoder's parts."""
        names = [self.weights, self.audio.path, self.decoder.weights_file, self.decoder.reference, self.decoder.rig]
        return [self.path(n) for n in names if n]

    def build(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
              load: bool = True) -> CausalDiT:
        model = CausalDiT(self.model)
        if load:
            self.check_files()
            load_weights(model, self.path(self.weights))
        return model.to(device=device, dtype=dtype).eval()

    def check_files(self, deep: bool = False) -> None:
        """Raise CheckpointError (one line per damaged file) unless the card's files match its checksums."""
        from .checksums import check_checksums
        problems = check_checksums(self.root, deep=deep)
        if len(problems) == 1:
            raise CheckpointError(f"model '{self.name}': {problems[0]}")
        if problems:
            raise CheckpointError(f"model '{self.name}': {len(problems)} damaged files\n" +
                                  "\n".join(f"  - {p}" for p in problems))

    def to_yaml(self) -> str:
        data = {"name": self.name, "description": self.description, "weights": self.weights, "fps": self.fps,
                "width": self.width, "height": self.height,
                "video_frames_per_latent": self.video_frames_per_latent,
                "model": to_dict(self.model), "stream": to_dict(self.stream), "audio": self.audio.to_yaml(),
                "decoder": self.decoder.to_yaml()}
        if self.text is not None:
            data["text"] = to_dict(self.text)
        return yaml.safe_dump(data, sort_keys=False)


def load_card(folder: str | Path) -> ModelCard:
    folder = Path(folder)
    card_file = folder / CARD_FILE if folder.is_dir() else folder
    if not card_file.exists():
        raise CheckpointError(f"no model card at {card_file} (a model folder holds {CARD_FILE} + weights)")
    try:
        data = yaml.safe_load(card_file.read_text()) or {}
        data["model"] = from_dict(ModelConfig, data.get("model", {}))
        data["stream"] = from_dict(StreamConfig, data.get("stream", {}))
        data["audio"] = AudioSpec.from_yaml(data.get("audio"))
        data["decoder"] = DecoderSpec.from_yaml(data.get("decoder"))
        text = data.get("text")
        sidecar = card_file.parent / LEGACY_TEXT_FILE
        if text is None and sidecar.is_file():
            text = _mapping(yaml.safe_load(sidecar.read_text()), f"{LEGACY_TEXT_FILE}")
        data["text"] = from_dict(TextSpec, _mapping(text, "text")) if text is not None else None
        return ModelCard(**data, root=card_file.parent)
    except (TypeError, ValueError, yaml.YAMLError) as exc:
        raise CheckpointError(f"invalid model card {card_file}: {exc}") from exc


def save_card(card: ModelCard, folder: str | Path, model: torch.nn.Module | None = None) -> Path:
    folder = Path(folder)
    if model is not None:
        save_weights(model, folder / card.weights)
    atomic_write_text(folder / CARD_FILE, card.to_yaml(), mode=0o644)
    write_card_checksums(folder)
    return folder


def write_card_checksums(folder: str | Path) -> Path:
    """(Re)write the size + sha256 list of a card folder's files (``avatarcam models checksum FOLDER``):
    called by save_card, so every card the training pipeline or an import writes carries one."""
    from .checksums import write_checksums
    return write_checksums(folder)


def resolve_card(model: str | Path | None) -> ModelCard:
    """A shipped model by name ('toon') or a path to a card folder."""
    name = str(model or "toon")
    candidate = Path(name).expanduser()
    if candidate.exists():
        return load_card(candidate)
    shipped = MODELS_DIR / name
    if shipped.exists():
        return load_card(shipped)
    known = sorted(p.name for p in MODELS_DIR.iterdir() if (p / CARD_FILE).exists()) if MODELS_DIR.exists() else []
    raise CheckpointError(f"model '{name}' not found: give a model folder (with {CARD_FILE}) or one of {known}")

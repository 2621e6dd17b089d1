"""One YAML file describes a whole distillation run: model, stream, data and every stage.

Why one file: the stages must agree on the architecture, the stream's levels and the data; a
single recipe read by every stage (and copied into each output folder) keeps them agreeing.
Unknown keys are errors, not silently ignored.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine.config import ModelConfig, StreamConfig, from_dict, to_dict


def toon_model() -> ModelConfig:
    """The shipped toon size: 256 wide, 8 layers, 12-channel 16x16 latents (64 tokens), log-mel audio."""
    return ModelConfig(dim=256, num_heads=4, num_layers=8, ffn_dim=1024, in_dim=25, out_dim=12, text_dim=0,
                       text_len=0, freq_dim=64, audio_dim=256, audio_pack=1, audio_hidden=32)


def toon_stream() -> StreamConfig:
    return StreamConfig(block_frames=2, timesteps=(1000, 800, 400, 200), temporal_frames=2)


@dataclass
class DataConfig:
    clips: int = 32                 # training clips (seeds first_seed .. first_seed+clips-1)
    seconds: float = 4.0
    fps: float = 25.0
    image_size: int = 256
    first_seed: int = 0
    shard_clips: int = 8            # clips per safetensors shard (a shard is one unit of work)
    autoencoder: str = "engine/models/toon/autoencoder.safetensors"
    reference_decoder: str = ""     # engine.codecs.refdecoder weights the card draws with ("" : the autoencoder's)
    rig: str = ""                   # engine.codecs.rigdecoder control reader: cartoons drawn by their rig ("" : none)
    logmel: dict = field(default_factory=dict)   # LogMelEncoder keyword arguments (defaults if empty)
    audio: dict = field(default_factory=dict)    # engine.clips.scene.ClipAudio settings ({}: espeak-only clips)
    green_screen: float = 0.0       # fraction of clips whose avatar stands on a key colour (engine.toon.chroma)
    encode_batch: int = 25


@dataclass
class TeacherConfig:
    steps: int = 400
    batch: int = 2                  # per rank
    frames: int = 12                # generated frames per example (after the reference frame)
    min_frames: int = 4             # shorter clips too, so the teacher scores short rollouts well (DMD)
    lr: float = 3e-4
    warmup: int = 20
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    block_noise: float = 0.3        # probability of independent noise levels per block (else one per clip)
    mouth_weight: float = 0.0       # loss weight 1 + this * the clip's mouth map (0: plain MSE)
    init: str = ""                  # start from these teacher weights (a fine-tune) instead of random
    audio_dropout: float = 0.0      # examples trained with zero audio: the unconditional branch of guidance
    bf16: bool = False              # bfloat16 autocast (1.35x faster on a CPU with AVX512-BF16/AMX)
    ckpt_every: int = 50
    log_every: int = 5
    seed: int = 0


@dataclass
class OdeConfig:
    trajectories: int = 32          # teacher ODE solutions to regress on
    ode_steps: int = 16             # Euler steps of the teacher ODE (plus the stream's levels)
    gen_batch: int = 2
    steps: int = 200
    batch: int = 2                  # per rank
    lr: float = 1e-4
    warmup: int = 10
    grad_clip: float = 1.0
    guidance: float = 1.0           # audio classifier-free guidance of the teacher ODE (needs teacher.audio_dropout)
    mouth_weight: float = 0.0       # regression weight 1 + this * the mouth map (as teacher.mouth_weight)
    grad_through_anchors: bool = True   # backprop into the prefill/update calls that write the anchors
    tail_windows: bool = False      # also train the drain windows of a finite input
    ckpt_every: int = 50
    log_every: int = 5
    seed: int = 1


@dataclass
class DmdConfig:
    steps: int = 60                 # student updates
    fake_per_student: int = 5       # fake-score updates per student update (two time-scale rule)
    batch: int = 1                  # per rank
    rollout_blocks: int = 6         # blocks fed to the rollout sampler (emits rollout_blocks - L + 1)
    grad_blocks: int = 1            # newest emitted blocks that carry gradient
    lr: float = 2e-5
    fake_lr: float = 1e-4
    grad_clip: float = 1.0
    guidance: float = 1.0           # audio classifier-free guidance of the real score (as ode.guidance)
    t_min: float = 20.0             # DMD noise level range (timesteps)
    t_max: float = 980.0
    ode_weight: float = 0.0         # optional regression to the ODE pairs (stabiliser)
    ckpt_every: int = 20
    log_every: int = 5
    seed: int = 2


@dataclass
class Recipe:
    name: str = "toon"
    model: ModelConfig = field(default_factory=toon_model)
    stream: StreamConfig = field(default_factory=toon_stream)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    ode: OdeConfig = field(default_factory=OdeConfig)
    dmd: DmdConfig = field(default_factory=DmdConfig)
    threads: int = 0                # torch threads per rank (0: cores / ranks)

    def to_yaml(self) -> str:
        data = {"name": self.name, "threads": self.threads}
        for key in ("model", "stream", "data", "teacher", "ode", "dmd"):
            data[key] = to_dict(getattr(self, key))
        return yaml.safe_dump(data, sort_keys=False)


_SECTIONS = {"model": ModelConfig, "stream": StreamConfig, "data": DataConfig, "teacher": TeacherConfig,
             "ode": OdeConfig, "dmd": DmdConfig}


def recipe_from_dict(data: dict) -> Recipe:
    allowed = set(_SECTIONS) | {"name", "threads"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown recipe sections {unknown}; allowed: {sorted(allowed)}")
    base = Recipe()
    kwargs = {k: data[k] for k in ("name", "threads") if k in data}
    for key, cls in _SECTIONS.items():
        section = data.get(key)
        kwargs[key] = getattr(base, key) if section is None else from_dict(
            cls, {**to_dict(getattr(base, key)), **section})
    from engine.clips.scene import clip_audio
    clip_audio(kwargs["data"].audio)     # bad data.audio settings fail here, before any stage starts
    return Recipe(**kwargs)


def load_recipe(path: str | Path | None) -> Recipe:
    """The recipe in `path` (sections override the toon defaults), or the defaults when None."""
    if path is None:
        return Recipe()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"recipe file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"recipe {path} must be a mapping of sections, got {type(data).__name__}")
    return recipe_from_dict(data)


def replace_section(recipe: Recipe, section: str, **changes) -> Recipe:
    return dataclasses.replace(recipe, **{section: dataclasses.replace(getattr(recipe, section), **changes)})

"""User settings: one dataclass tree, a YAML file in the user's config dir, validation with messages
that name the key. The UI and the CLI both read and write through here.

Unknown keys (a typo, or a file from a newer version) are reported in one warning and kept, so saving
never loses them. Saving is atomic and private (mode 0600): the file holds the OBS password.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from avatarcam.errors import ConfigError
from avatarcam.hotkey_text import check_hotkey
from engine.files import atomic_write_text

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.yaml"


def _choices(*values) -> dict:
    return {"choices": tuple(values)}


def _range(lo, hi) -> dict:
    return {"range": (lo, hi)}


def _hotkey() -> dict:
    return {"check": check_hotkey}


@dataclass
class AudioSettings:
    mic: int | str | None = None  # device name or index; None: the system default
    block_ms: int = field(default=20, metadata=_range(5, 200))
    delayed_output: str | None = None  # output device (null sink / virtual cable); None: off
    delay_auto: bool = True  # delay = measured engine latency
    delay_s: float = field(default=0.0, metadata=_range(0.0, 10.0))  # used when delay_auto is off
    vad: bool = False  # voice-activity gate (silero-vad): what is not speech reaches the engine as silence
    noise_gate_db: float | None = field(default=None, metadata=_range(-90.0, 0.0))  # below it the avatar hears
    # silence (dBFS, the Devices page meter; dragged there); None: off


@dataclass
class CameraSettings:
    enabled: bool = True
    backend: str | None = None  # pyvirtualcam backend; None: the first that works
    device: str | None = None
    width: int = field(default=1280, metadata=_range(64, 4096))
    height: int = field(default=720, metadata=_range(64, 4096))
    fps: int = field(default=25, metadata=_range(1, 120))
    mirror: bool = False


@dataclass
class OutputSettings:
    record: str | None = None  # mp4 path; None: no recording


@dataclass
class ObsSettings:
    enabled: bool = False
    host: str = "localhost"
    port: int = field(default=4455, metadata=_range(1, 65535))  # obs-websocket v5 (4444 was v4)
    password: str = ""
    scene: str = "AvatarCam"
    source: str = "AvatarCam Camera"
    mic_input: str = "Mic/Aux"
    sync_offset_auto: bool = True  # mic sync offset = measured engine latency
    sync_offset_ms: int = field(default=0, metadata=_range(-950, 20000))  # obs-websocket's limits
    keyed: bool = False  # a green-screen avatar goes into keyed_scene as a camera source with a Chroma Key
    keyed_scene: str | None = None  # None: the scene above


@dataclass
class AnchorSettings:
    style_anchor: bool = True
    rope_reindex: bool = True
    anchor_audio_zero: bool = True
    temporal_frames: int = field(default=2, metadata=_range(0, 64))  # clean frames kept; 2 as trained
    preset: str = field(default="balanced", metadata=_choices("balanced", "stable", "expressive", "custom"))
    # preset "custom": block size B, window L, passes N; None takes the model card's value
    block_frames: int | None = field(default=None, metadata=_range(1, 16))
    window: int | None = field(default=None, metadata=_range(1, 16))
    passes: int | None = field(default=None, metadata=_range(1, 4))


@dataclass
class EngineSettings:
    model: str = "toon"  # a shipped model name or a path to a model card folder
    device: str = field(default="auto", metadata=_choices("auto", "cpu", "cuda"))
    backend: str = field(default="auto", metadata=_choices("auto", "eager", "compile", "tensorrt"))
    dtype: str = field(default="auto", metadata=_choices("auto", "float32", "float16", "bfloat16"))
    threads: int = field(default=0, metadata=_range(0, 256))  # CPU threads; 0: half the cores (a busy
    # machine slows an oversubscribed torch by 10x or more, see docs/bench_engine.md)


@dataclass
class AvatarSettings:
    current: str | None = None


@dataclass
class UiSettings:
    geometry: str | None = None  # saved window geometry (Qt's saveGeometry, base64)
    theme: str = field(default="system", metadata=_choices("system", "light", "dark"))


@dataclass
class HotkeySettings:
    """Global hotkeys (they work while a game has focus); "<ctrl>+<alt>+m" style, None: unused."""

    enabled: bool = False
    next_avatar: str | None = field(default="<ctrl>+<alt>+<right>", metadata=_hotkey())
    previous_avatar: str | None = field(default="<ctrl>+<alt>+<left>", metadata=_hotkey())
    mute: str | None = field(default="<ctrl>+<alt>+m", metadata=_hotkey())          # toggles
    push_to_talk: str | None = field(default=None, metadata=_hotkey())              # held: the mic is open
    chosen: str | None = field(default="<ctrl>+<alt>+1", metadata=_hotkey())        # switches to chosen_avatar
    chosen_avatar: str | None = None


@dataclass
class Settings:
    audio: AudioSettings = field(default_factory=AudioSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    obs: ObsSettings = field(default_factory=ObsSettings)
    anchors: AnchorSettings = field(default_factory=AnchorSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    avatar: AvatarSettings = field(default_factory=AvatarSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    hotkeys: HotkeySettings = field(default_factory=HotkeySettings)
    # keys this version does not know, kept so that saving does not lose them ("section.key" -> value)
    extras: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for f in _sections():
            out[f.name] = dataclasses.asdict(getattr(self, f.name))
        for dotted, value in self.extras.items():
            section, _, key = dotted.partition(".")
            if key and isinstance(out.get(section), dict):
                out[section][key] = value
            else:
                out[dotted] = value
        return out


def _sections() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Settings) if f.name != "extras"]


def default_settings_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("avatarcam")) / SETTINGS_FILE


# ------------------------------------------------------------------------------------------ values

def _allowed(tp, meta: Mapping) -> str:
    if "choices" in meta:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    names = {bool: "true/false", int: "an integer", float: "a number", str: "text", type(None): "null"}
    kinds = [names.get(t, t.__name__) for t in _members(tp)]
    text = " or ".join(dict.fromkeys(kinds))
    if "range" in meta:
        lo, hi = meta["range"]
        text += f" in {lo}..{hi}"
    return text


def _members(tp) -> tuple:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return typing.get_args(tp)
    return (tp,)


def _coerce(path: str, value: Any, tp, meta: Mapping, from_text: bool) -> Any:
    """Check (and, for CLI text, convert) one value; raise ConfigError naming ``path``."""
    members = _members(tp)

    def bad() -> ConfigError:
        return ConfigError(f"{path}: {value!r} is not valid; expected {_allowed(tp, meta)}")

    if from_text and isinstance(value, str):
        text = value.strip()
        if type(None) in members and text.lower() in ("", "none", "null"):
            return None
        for t in members:
            try:
                if t is bool and text.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                    value = text.lower() in ("true", "yes", "on", "1")
                    break
                if t is int:
                    value = int(text)
                    break
                if t is float:
                    value = float(text)
                    break
            except ValueError:
                continue
    if value is None:
        if type(None) in members:
            return None
        raise bad()
    if isinstance(value, bool):
        if bool not in members:
            raise bad()
    elif isinstance(value, int):
        if int not in members:
            if float in members:
                value = float(value)
            else:
                raise bad()
    elif isinstance(value, float):
        if float not in members:
            if int in members and value.is_integer():
                value = int(value)
            else:
                raise bad()
    elif isinstance(value, str):
        if str not in members:
            raise bad()
    else:
        raise bad()
    if "choices" in meta and value not in meta["choices"]:
        raise bad()
    if "range" in meta and not isinstance(value, bool):
        lo, hi = meta["range"]
        if not lo <= value <= hi:
            raise bad()
    if "check" in meta and (problem := meta["check"](value)):
        raise ConfigError(f"{path}: {problem}")
    return value


def _fields(section_cls) -> dict[str, tuple[Any, Mapping]]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: (hints[f.name], f.metadata) for f in dataclasses.fields(section_cls)}


def _section_fields() -> dict[str, tuple[type, dict]]:
    hints = typing.get_type_hints(Settings)
    return {f.name: (hints[f.name], _fields(hints[f.name])) for f in _sections()}


def validate(settings: Settings) -> Settings:
    """Raise ConfigError for the first invalid value (e.g. set in code or by the UI)."""
    for name, (_, fields) in _section_fields().items():
        section = getattr(settings, name)
        for key, (tp, meta) in fields.items():
            _coerce(f"{name}.{key}", getattr(section, key), tp, meta, from_text=False)
    return settings


def settings_from_dict(data: Mapping | None) -> tuple[Settings, list[str]]:
    """Build validated Settings from a parsed YAML mapping; also return the unknown keys."""
    settings = Settings()
    unknown: list[str] = []
    if data is None:
        return settings, unknown
    if not isinstance(data, Mapping):
        raise ConfigError(f"settings: expected a mapping of sections, got {type(data).__name__}")
    sections = _section_fields()
    for name, values in data.items():
        if name not in sections:
            unknown.append(str(name))
            settings.extras[str(name)] = values
            continue
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"{name}: expected a mapping of settings, got {values!r}")
        cls, fields = sections[name]
        kwargs = {}
        for key, value in values.items():
            if key not in fields:
                unknown.append(f"{name}.{key}")
                settings.extras[f"{name}.{key}"] = value
                continue
            tp, meta = fields[key]
            kwargs[key] = _coerce(f"{name}.{key}", value, tp, meta, from_text=False)
        setattr(settings, name, cls(**kwargs))
    return settings, unknown


# -------------------------------------------------------------------------------------- load/save

def load_settings(path: str | Path | None = None) -> Settings:
    """Settings from ``path`` (default: the user config dir); defaults when the file does not exist."""
    path = Path(path) if path is not None else default_settings_path()
    if not path.exists():
        log.info("no settings file at %s; using defaults", path)
        return Settings()
    fix = f"fix it, or start from defaults with `{reset_command(path)}` (it keeps the old file as a backup)"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        raise ConfigError(f"settings file {path} is not valid YAML{where}: "
                          f"{getattr(e, 'problem', None) or e}; {fix}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"settings file {path} is not text (byte {e.start} is not UTF-8: a binary or damaged "
                          f"file); {fix}") from e
    except OSError as e:
        raise ConfigError(f"cannot read settings file {path}: {e}") from e
    try:
        settings, unknown = settings_from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}; {fix}") from e
    if unknown:
        log.warning("%s: unknown settings kept but not used: %s", path, ", ".join(unknown))
    return settings


def reset_command(path: Path) -> str:
    default = path == default_settings_path()
    return "avatarcam settings reset" if default else f"avatarcam --settings {path} settings reset"


def reset_settings(path: str | Path | None = None) -> Path | None:
    """Move the settings file aside (``settings.yaml.bak-YYYYmmdd-HHMMSS``) so defaults apply; returns the
    backup, or None when there was no file. Nothing is deleted."""
    import time
    path = Path(path) if path is not None else default_settings_path()
    if not path.exists():
        return None
    backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while backup.exists():
        backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        n += 1
    try:
        path.rename(backup)
    except OSError as e:
        raise ConfigError(f"cannot move {path} aside: {e.strerror or e}") from e
    return backup


def save_settings(settings: Settings, path: str | Path | None = None) -> Path:
    """Validate and write atomically (temp file + fsync + rename), readable only by the user."""
    validate(settings)
    path = Path(path) if path is not None else default_settings_path()
    text = yaml.safe_dump(settings.to_dict(), sort_keys=False, allow_unicode=True)
    return atomic_write_text(path, text, mode=0o600, fsync=True)  # 0600 from the first byte: the OBS password


def apply_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """A copy of ``settings`` with ``{"camera.fps": 30, ...}`` applied (CLI flags; text is converted)."""
    out = copy.deepcopy(settings)
    sections = _section_fields()
    for dotted, value in overrides.items():
        name, _, key = str(dotted).partition(".")
        if name not in sections:
            raise ConfigError(f"{dotted}: unknown setting; sections are {', '.join(sections)}")
        fields = sections[name][1]
        if key not in fields:
            raise ConfigError(f"{dotted}: unknown setting; {name} has {', '.join(fields)}")
        tp, meta = fields[key]
        setattr(getattr(out, name), key, _coerce(str(dotted), value, tp, meta, from_text=True))
    return out

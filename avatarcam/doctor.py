"""`avatarcam doctor` and `avatarcam devices`: what works on this machine, and how to fix what does not.

Every check catches its own errors and runs under a time limit in a daemon thread, so one broken
library or a hung sound server costs a line in the report, never the report. The OBS check (the only
one that waits on the network) runs alongside the others with a short connect timeout.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from avatarcam.config import Settings, default_settings_path
from avatarcam.errors import DeviceError

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 6.0       # per check; a PortAudio or camera call that hangs longer is reported
IMPORT_TIMEOUT_S = 30.0     # importing torch from a cold disk can take a while
OBS_TIMEOUT_S = 1.5         # connect timeout for the OBS check
MIN_PYTHON = (3, 10)
MIN_TORCH = (2, 3)
_REINSTALL = ("the AvatarCam installation is incomplete: reinstall it (pip install --force-reinstall avatarcam, "
              "or `pip install -e .` in a source checkout)")

# check names, in report order
PYTHON, TORCH, COMPUTE, TENSORRT = "python", "torch", "compute device", "torch-tensorrt"
ENGINE = "engine variant"
PORTAUDIO, MICROPHONES, MICROPHONE, AUDIO_OUTPUT = "portaudio", "microphones", "microphone", "delayed output"
CAMERA, OBS, MODEL, PYAV = "virtual camera", "obs", "model", "pyav"
CONFIG_DIR, LIBRARY, PYSIDE6, DISPLAY = "config dir", "avatar library", "pyside6", "display"
CHECK_NAMES = (PYTHON, TORCH, COMPUTE, ENGINE, TENSORRT, PORTAUDIO, MICROPHONES, MICROPHONE, AUDIO_OUTPUT, CAMERA, OBS,
               MODEL, PYAV, CONFIG_DIR, LIBRARY, PYSIDE6, DISPLAY)


@dataclass
class Check:
    """One line of the report: ok True (OK), False (FAIL) or None (SKIP: not used / not applicable)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""

    @property
    def status(self) -> str:
        return {True: "OK", False: "FAIL", None: "SKIP"}[self.ok]

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "status": self.status}


def all_ok(checks: list[Check]) -> bool:
    """True when nothing failed (skips are fine): the exit status of `avatarcam doctor`."""
    return not any(c.ok is False for c in checks)


# ------------------------------------------------------------------------------------------ runner

class _Job:
    """Run a check in a daemon thread now; ``result()`` waits at most until its deadline."""

    def __init__(self, name: str, fn: Callable[[], Check], timeout: float):
        self.name, self.timeout = name, timeout
        self._out: Check | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=f"doctor-{name}", daemon=True)
        self._start = time.monotonic()
        self._thread.start()

    def _run(self, fn: Callable[[], Check]) -> None:
        try:
            self._out = fn()
        except BaseException as e:  # noqa: BLE001 - the report must survive anything a check does
            self._error = e

    def result(self) -> Check:
        self._thread.join(max(0.0, self._start + self.timeout - time.monotonic()))
        if self._thread.is_alive():
            return Check(self.name, False, f"no answer within {self.timeout:g} s (the check is still hanging)",
                         "a driver or service is stuck: restart it (or the computer) and run `avatarcam doctor` again")
        if self._error is not None:
            e = self._error
            log.debug("doctor check %s raised", self.name, exc_info=e)
            return Check(self.name, False, f"the check itself failed: {type(e).__name__}: {e}",
                         "run `avatarcam --debug doctor` for the traceback and report it")
        assert self._out is not None
        return self._out


def guarded(name: str, fn: Callable[[], Check], timeout: float = CHECK_TIMEOUT_S) -> Check:
    """Run one check so that it can neither raise nor hang the report."""
    return _Job(name, fn, timeout).result()


# ------------------------------------------------------------------------------------------ python/torch

def check_python() -> Check:
    v = sys.version_info
    text = f"Python {platform.python_version()} ({platform.python_implementation()}, {platform.system()} " \
           f"{platform.machine()})"
    if (v.major, v.minor) < MIN_PYTHON:
        return Check(PYTHON, False, text, f"AvatarCam needs Python {'.'.join(map(str, MIN_PYTHON))} or newer")
    return Check(PYTHON, True, text)


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def check_torch() -> Check:
    try:
        import torch
    except Exception as e:  # ImportError, or a broken CUDA library raising OSError
        return Check(TORCH, False, f"PyTorch cannot be imported: {e}",
                     "pip install torch (CPU build), or a CUDA build from https://pytorch.org/get-started/locally/")
    text = f"torch {torch.__version__}"
    if _version_tuple(torch.__version__) < MIN_TORCH:
        return Check(TORCH, False, text, f"AvatarCam needs torch {'.'.join(map(str, MIN_TORCH))} or newer: "
                                          "pip install --upgrade torch")
    return Check(TORCH, True, text)


def check_compute(settings: Settings) -> Check:
    try:
        import torch
    except Exception as e:
        return Check(COMPUTE, None, f"no torch ({type(e).__name__})")
    wanted = settings.engine.device
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        cuda = getattr(torch.version, "cuda", None)
        text = f"CUDA {cuda}: {names}"
        if wanted == "cpu":
            text += " (engine.device is cpu: the GPU is not used)"
        return Check(COMPUTE, True, text)
    mps = getattr(torch.backends, "mps", None)
    extra = "; Apple GPU (MPS) available" if mps is not None and mps.is_available() else ""
    built = "this torch has no CUDA support" if getattr(torch.version, "cuda", None) is None \
        else "no CUDA GPU or driver found"
    text = f"CPU, {os.cpu_count() or '?'} cores ({built}){extra}"
    if wanted == "cuda":
        return Check(COMPUTE, False, text + "; engine.device is cuda",
                     "install an NVIDIA driver and a CUDA build of PyTorch (https://pytorch.org/get-started/locally/), "
                     "or set engine.device to auto/cpu (the toon model runs in real time on a CPU)")
    return Check(COMPUTE, True, text + ": the toon model runs on CPU; the 1.3B model needs an NVIDIA GPU")


def check_engine(settings: Settings, model: str) -> Check:
    """Which CPU variant `run` uses (measured on this machine, or set), and how fast it was."""
    e = settings.engine
    if e.backend not in ("auto",) and e.dtype not in ("auto",):
        return Check(ENGINE, True, f"{e.backend}/{e.dtype} (set by engine.backend and engine.dtype)")
    from .models import resolve_model
    from .tuning import load_choice
    try:
        folder = resolve_model(model)
    except Exception as exc:
        return Check(ENGINE, None, f"no model to measure ({exc})")
    choice = load_choice(folder)
    if choice is None:
        return Check(ENGINE, None, f"not measured yet for {folder.name} on this machine: the first `avatarcam run` "
                                   "measures it (a few minutes, once), or run `avatarcam bench tune` now")
    return Check(ENGINE, True, choice.describe())


def check_tensorrt(settings: Settings) -> Check:
    wanted = settings.engine.backend == "tensorrt"
    if importlib.util.find_spec("torch_tensorrt") is None:
        if wanted:
            return Check(TENSORRT, False, "engine.backend is tensorrt but torch-tensorrt is not installed",
                         "pip install torch-tensorrt (the 'gpu' extra; needs an NVIDIA GPU), "
                         "or set engine.backend to eager/compile")
        return Check(TENSORRT, None, f"not installed; not needed (engine.backend is {settings.engine.backend})")
    if not wanted:
        return Check(TENSORRT, None, f"installed; not used (engine.backend is {settings.engine.backend})")
    try:
        import torch_tensorrt
    except Exception as e:
        return Check(TENSORRT, False, f"torch-tensorrt is installed but cannot be imported: {e}",
                     "install the torch-tensorrt release built for your torch version")
    return Check(TENSORRT, True, f"torch-tensorrt {getattr(torch_tensorrt, '__version__', '?')}")


# ------------------------------------------------------------------------------------------ audio

_PORTAUDIO_FIX = {
    "Linux": "sudo apt install libportaudio2 (Fedora: portaudio), then pip install sounddevice",
    "Darwin": "pip install sounddevice (its macOS wheel bundles PortAudio)",
    "Windows": "pip install sounddevice (its Windows wheel bundles PortAudio)",
}


def check_portaudio() -> Check:
    try:
        import sounddevice as sd
    except ImportError as e:
        return Check(PORTAUDIO, False, f"sounddevice is not installed ({e})", "pip install sounddevice")
    except OSError as e:  # the import itself fails when libportaudio is missing
        return Check(PORTAUDIO, False, f"PortAudio library not found ({e})",
                     _PORTAUDIO_FIX.get(platform.system(), "install PortAudio"))
    apis = [h["name"] for h in sd.query_hostapis()]
    version = sd.get_portaudio_version()[1]
    if not apis:
        return Check(PORTAUDIO, False, f"{version}: no host audio APIs", "install and start a sound server "
                     "(Linux: PulseAudio or PipeWire)")
    return Check(PORTAUDIO, True, f"{version}; host APIs: {', '.join(apis)}")


def _sound_server_fix() -> str:
    if platform.system() == "Linux":
        return ("connect a microphone and check that the sound server runs (`pactl info`); PortAudio sees "
                "PulseAudio/PipeWire through the ALSA 'pulse' device (apt install libasound2-plugins)")
    return "connect a microphone and allow microphone access for this terminal/app in the system settings"


def check_microphones() -> Check:
    from avatarcam.audio import list_input_devices

    mics = list_input_devices()
    if not mics:
        return Check(MICROPHONES, False, "no microphones found", _sound_server_fix())
    names = [f"{d.name}{' (default)' if d.is_default else ''}" for d in mics]
    shown = ", ".join(names[:8]) + (f", ... (+{len(names) - 8} more)" if len(names) > 8 else "")
    return Check(MICROPHONES, True, f"{len(mics)}: {shown}")


def check_selected_microphone(settings: Settings) -> Check:
    from avatarcam.audio import resolve_device

    want = settings.audio.mic
    try:
        d = resolve_device(want, "input")
    except DeviceError as e:
        return Check(MICROPHONE, False, str(e),
                     "set audio.mic to a name or index that `avatarcam devices` lists, or leave it empty "
                     "for the system default")
    how = "system default" if want is None else f"audio.mic = {want!r}"
    return Check(MICROPHONE, True, f"[{d.index}] {d.name} ({how}; {d.channels} ch, {d.default_rate:g} Hz)")


def check_delayed_output(settings: Settings) -> Check:
    from avatarcam.audio import resolve_device

    want = settings.audio.delayed_output
    if not want:
        return Check(AUDIO_OUTPUT, None, "off (audio.delayed_output is empty)")
    try:
        d = resolve_device(want, "output")
    except DeviceError as e:
        return Check(AUDIO_OUTPUT, False, str(e).replace("Audio output", "Delayed output"),
                     "set audio.delayed_output to an output `avatarcam devices` lists (a null sink or virtual "
                     "cable), or empty it to turn the delayed mic off")
    return Check(AUDIO_OUTPUT, True, f"[{d.index}] {d.name}")


# ------------------------------------------------------------------------------------------ camera

def probe_camera(settings: Settings) -> dict:
    """Open the virtual camera the settings describe for a moment: where it is, or why not and the fix."""
    from avatarcam.sinks import VirtualCamera, no_camera_message

    cam_cfg = settings.camera
    out: dict[str, Any] = {"available": False, "device": None, "backend": None, "reason": None, "fix": None}
    try:
        cam = VirtualCamera(cam_cfg.width, cam_cfg.height, cam_cfg.fps, device=cam_cfg.device,
                            backend=cam_cfg.backend)
        cam.open()
        try:
            out.update(available=True, device=cam.device, backend=cam.backend)
        finally:
            cam.close()
    except DeviceError as e:
        cause = e.__cause__
        if isinstance(cause, ImportError):
            out.update(reason="pyvirtualcam is not installed", fix=str(e))
        elif isinstance(cause, RuntimeError):
            out.update(reason=str(cause), fix=no_camera_message(platform.system(), ""))
        else:
            out.update(reason=str(e).split("\n")[0], fix=str(e))
    except Exception as e:  # ConfigError for impossible sizes, or a backend bug
        out.update(reason=f"{type(e).__name__}: {e}", fix="check the camera.* settings")
    return out


def check_camera(settings: Settings) -> Check:
    probe = probe_camera(settings)
    size = f"{settings.camera.width}x{settings.camera.height} @ {settings.camera.fps} fps"
    if probe["available"]:
        return Check(CAMERA, True, f"{probe['device']} ({probe['backend']}), {size}")
    ok = None if not settings.camera.enabled else False
    note = " (camera.enabled is off)" if ok is None else ""
    return Check(CAMERA, ok, f"cannot open a virtual camera{note}: {probe['reason']}", probe["fix"] or "")


# ------------------------------------------------------------------------------------------ OBS

def check_obs(settings: Settings, timeout_s: float = OBS_TIMEOUT_S) -> Check:
    obs = settings.obs
    if not obs.enabled:
        return Check(OBS, None, "OBS control is off (obs.enabled)")
    from avatarcam.errors import ConfigError
    from avatarcam.obs import ObsConfig, test_connection

    try:
        cfg = ObsConfig(host=obs.host, port=obs.port, password=obs.password, timeout_s=timeout_s)
    except ConfigError as e:
        return Check(OBS, False, str(e), "fix obs.host / obs.port in the settings")
    ok, message = test_connection(cfg)
    if ok:
        return Check(OBS, True, message)
    return Check(OBS, False, message,
                 "start OBS Studio 28+ and tick Tools → WebSocket Server Settings → Enable WebSocket server; "
                 "copy its port and password into obs.port / obs.password (or set obs.enabled to false)")


# ------------------------------------------------------------------------------------------ model

def check_model(model: str, models_dir: Path | None = None) -> Check:
    """The card loads and every weight file it names exists (safetensors headers are read, not the weights)."""
    from .models import locate_model
    folder, source = locate_model(model, shipped_root=models_dir)
    shipped = source == "shipped"
    if not folder.exists():
        from .config import EngineSettings
        if shipped and model != EngineSettings().model:   # a name nobody ships: a typo, not a broken install
            from .models import list_models
            known = ", ".join(sorted({e.name for e in list_models(shipped_root=models_dir)})) or "none"
            return Check(MODEL, False, f"no model named {model!r} (known: {known})",
                         "see `avatarcam models list`; set engine.model to one of them or to a model folder")
        if shipped:
            return Check(MODEL, False, f"the shipped model {model!r} is missing ({folder} does not exist)", _REINSTALL)
        return Check(MODEL, False, f"model folder {folder} does not exist",
                     "set engine.model to 'toon' or to a folder holding model.yaml and its weights")
    from engine.card import load_card
    from engine.checkpoints import CheckpointError

    try:
        card = load_card(folder)
    except CheckpointError as e:
        return Check(MODEL, False, str(e), _REINSTALL if shipped else
                     "point engine.model at a folder with a valid model.yaml (see the model card docs)")
    missing = [p for p in card.weight_files() if not p.exists()]
    if missing:
        return Check(MODEL, False, f"{card.name}: missing weight files: {', '.join(str(p) for p in missing)}",
                     _REINSTALL if shipped else "copy the missing files into the model folder")
    total = 0
    for p in card.weight_files():
        if p.is_file() and p.suffix == ".safetensors":
            try:
                from safetensors import safe_open

                with safe_open(str(p), framework="pt") as f:
                    f.keys()
            except Exception as e:
                return Check(MODEL, False, f"{card.name}: {p} is not a readable safetensors file ({e})",
                             _REINSTALL if shipped else f"replace {p} with an intact copy")
        total += p.stat().st_size if p.is_file() else 0
    from engine.checksums import check_checksums
    damaged = check_checksums(card.root)
    if damaged:
        return Check(MODEL, False, f"{card.name}: {damaged[0]}" + (f" (+{len(damaged) - 1} more)" if len(damaged) > 1 else ""),
                     _REINSTALL if shipped else "re-import the model, or `avatarcam models checksum FOLDER` "
                                                "after a deliberate change")
    where = "shipped" if shipped else str(folder)
    return Check(MODEL, True, f"{card.name} ({where}): {card.width}x{card.height} @ {card.fps:g} fps, "
                              f"{len(card.weight_files())} weight files, {total / 1e6:.1f} MB")


# ------------------------------------------------------------------------------------------ files, video, UI

def check_pyav() -> Check:
    try:
        import av
    except ImportError as e:
        return Check(PYAV, False, f"PyAV is not installed ({e}): recording to mp4 is unavailable", "pip install av")
    missing = []
    for codec in ("libx264", "aac"):
        try:
            av.codec.Codec(codec, "w")
        except Exception:
            missing.append(codec)
    version = getattr(av, "__version__", "?")
    if missing:
        return Check(PYAV, False, f"PyAV {version} lacks the encoders {', '.join(missing)}",
                     "pip install --force-reinstall av (the PyPI wheels include libx264 and AAC); a PyAV built "
                     "against a system FFmpeg needs one configured with --enable-libx264")
    return Check(PYAV, True, f"PyAV {version}: H.264 (libx264) and AAC encoders available")


def _probe_writable(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".doctor-", suffix=".tmp")
    try:
        os.write(fd, b"ok")
    finally:
        os.close(fd)
        os.unlink(tmp)


def check_config_dir(settings_path: Path | None = None) -> Check:
    path = Path(settings_path) if settings_path is not None else default_settings_path()
    try:
        _probe_writable(path.parent)
    except OSError as e:
        return Check(CONFIG_DIR, False, f"cannot write in {path.parent}: {e.strerror or e}",
                     f"make {path.parent} writable by this user (or remove the file in its way)")
    if path.exists():
        from .config import load_settings, reset_command
        from .errors import ConfigError
        try:
            load_settings(path)
        except ConfigError as e:
            return Check(CONFIG_DIR, False, str(e).split("; fix it, or")[0],
                         f"fix the file, or `{reset_command(path)}` (moves it aside as a backup, then defaults)")
    state = "" if path.exists() else ", not created yet: defaults in use"
    return Check(CONFIG_DIR, True, f"{path} (writable{state})")


def check_library(library_root: Path | None = None, current: str | None = None) -> Check:
    from avatarcam.avatars import AvatarLibrary

    lib = AvatarLibrary(library_root)
    try:
        _probe_writable(lib.root)
    except OSError as e:
        return Check(LIBRARY, False, f"cannot write in {lib.root}: {e.strerror or e}",
                     f"make {lib.root} writable, or set AVATARCAM_HOME to a writable folder")
    avatars = lib.list()
    text = f"{lib.root}: {len(avatars)} avatar{'s' if len(avatars) != 1 else ''}"
    if current and current not in lib:
        return Check(LIBRARY, False, text + f"; avatar.current {current!r} is not among them",
                     "pick one with `avatarcam avatars use NAME`")
    return Check(LIBRARY, True, text)


def check_pyside6() -> Check:
    if importlib.util.find_spec("PySide6") is None:
        return Check(PYSIDE6, False, "PySide6 is not installed: the tray icon and window are unavailable "
                                     "(the command line works)",
                     "pip install 'PySide6-Essentials>=6.5' (the 'ui' extra)")
    try:
        import PySide6
        from PySide6 import QtCore
    except Exception as e:
        return Check(PYSIDE6, False, f"PySide6 cannot be imported: {e}",
                     "pip install --force-reinstall PySide6-Essentials (Linux also needs libegl1 and libxkbcommon0)")
    return Check(PYSIDE6, True, f"PySide6 {PySide6.__version__} (Qt {QtCore.qVersion()})")


def display_problem() -> str | None:
    """Why a window cannot open here (Linux without a reachable display), or None. Qt itself would abort
    with a misleading "xcb-cursor0 is needed" instead."""
    if platform.system() != "Linux" or os.environ.get("QT_QPA_PLATFORM"):
        return None
    wayland, x11 = os.environ.get("WAYLAND_DISPLAY"), os.environ.get("DISPLAY")
    if not wayland and not x11:
        return ("no display: DISPLAY and WAYLAND_DISPLAY are unset (a console or ssh session); start the tray from "
                "a desktop session (or ssh -X), or stream headless with `avatarcam run`")
    if not wayland and x11 and x11.startswith(":"):
        number = x11[1:].split(".")[0]
        if number.isdigit() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return (f"no display: DISPLAY={x11} but no X server listens there; start the tray from a desktop session, "
                    "or stream headless with `avatarcam run`")
    return None


def check_display() -> Check:
    """Is there a screen (and a tray) for the UI? Never creates a QApplication."""
    system = platform.system()
    if system == "Linux":
        wayland, x11 = os.environ.get("WAYLAND_DISPLAY"), os.environ.get("DISPLAY")
        if not wayland and not x11:
            return Check(DISPLAY, None, "no display (DISPLAY and WAYLAND_DISPLAY are unset): the tray and window "
                                        "cannot open here; the command line works",
                         "run the UI from a desktop session")
        where = f"Wayland {wayland}" if wayland else f"X11 {x11}"
    else:
        where = {"Windows": "Windows desktop", "Darwin": "macOS desktop"}.get(system, system)
    tray = _tray_state()
    if tray is False:
        return Check(DISPLAY, True, f"{where}; no system tray: the window opens instead",
                     "GNOME needs the 'AppIndicator and KStatusNotifierItem Support' extension for tray icons")
    if tray is None:
        hint = " (GNOME shows tray icons only with the AppIndicator extension)" if system == "Linux" else ""
        return Check(DISPLAY, True, f"{where}; tray availability is checked when the UI starts{hint}")
    return Check(DISPLAY, True, f"{where}; system tray available")


def _tray_state() -> bool | None:
    """Ask Qt about the tray only when this process already runs a QApplication (the UI's doctor)."""
    widgets = sys.modules.get("PySide6.QtWidgets")
    if widgets is None:
        return None
    try:
        if widgets.QApplication.instance() is None:
            return None
        return bool(widgets.QSystemTrayIcon.isSystemTrayAvailable())
    except Exception:
        return None


# ------------------------------------------------------------------------------------------ report

def _stream_model(settings: Settings, model: str | None, library_root: Path | None) -> str:
    """The model `avatarcam run` would load (the current avatar may pin one); a broken library is its own check."""
    from .avatars import AvatarLibrary
    from .stream_options import current_avatar, model_for
    try:
        avatar = current_avatar(settings, AvatarLibrary(library_root))
    except Exception:
        avatar = None
    return model_for(settings, model, avatar)


def run_checks(settings: Settings | None = None, model: str | None = None, *, settings_path: Path | None = None,
               library_root: Path | None = None, timeout_s: float = CHECK_TIMEOUT_S,
               obs_timeout_s: float = OBS_TIMEOUT_S) -> list[Check]:
    """Every check in ``CHECK_NAMES`` order. Never raises; bounded by the timeouts even if a service hangs.

    ``model`` overrides the model `run` would use (e.g. `avatarcam doctor --model PATH`).
    """
    settings = settings if settings is not None else Settings()
    model_name = _stream_model(settings, model, library_root)
    plan: list[tuple[str, Callable[[], Check], float]] = [
        (PYTHON, check_python, timeout_s),
        (TORCH, check_torch, IMPORT_TIMEOUT_S),
        (COMPUTE, lambda: check_compute(settings), timeout_s),
        (ENGINE, lambda: check_engine(settings, model_name), IMPORT_TIMEOUT_S),
        (TENSORRT, lambda: check_tensorrt(settings), IMPORT_TIMEOUT_S),
        (PORTAUDIO, check_portaudio, timeout_s),
        (MICROPHONES, check_microphones, timeout_s),
        (MICROPHONE, lambda: check_selected_microphone(settings), timeout_s),
        (AUDIO_OUTPUT, lambda: check_delayed_output(settings), timeout_s),
        (CAMERA, lambda: check_camera(settings), timeout_s),
        (OBS, lambda: check_obs(settings, obs_timeout_s), obs_timeout_s * 2 + timeout_s),
        (MODEL, lambda: check_model(model_name), IMPORT_TIMEOUT_S),
        (PYAV, check_pyav, timeout_s),
        (CONFIG_DIR, lambda: check_config_dir(settings_path), timeout_s),
        (LIBRARY, lambda: check_library(library_root, settings.avatar.current), timeout_s),
        (PYSIDE6, check_pyside6, IMPORT_TIMEOUT_S),
        (DISPLAY, check_display, timeout_s),
    ]
    # OBS waits on the network: start it first so that it overlaps with the local checks
    background = {name: _Job(name, fn, timeout) for name, fn, timeout in plan if name == OBS}
    return [background[name].result() if name in background else guarded(name, fn, timeout)
            for name, fn, timeout in plan]


def _status_width(checks: list[Check]) -> int:
    return max((len(c.name) for c in checks), default=0)


def format_checks(checks: list[Check]) -> str:
    """Aligned ``OK / FAIL / SKIP  name  detail`` lines; a fix follows each line that has one and is not OK."""
    width = _status_width(checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<4}  {c.name:<{width}}  {c.detail}".rstrip())
        if c.ok is not True and c.fix:
            for i, part in enumerate(c.fix.splitlines()):
                lines.append(f"{'':<4}  {'':<{width}}  {'fix: ' if i == 0 else '     '}{part}")
    failed = sum(c.ok is False for c in checks)
    lines.append("")
    lines.append("All checks passed." if not failed else f"{failed} check{'s' if failed != 1 else ''} failed.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ devices

def _device_dict(d) -> dict:
    return dataclasses.asdict(d)


def devices_report(settings: Settings | None = None, timeout_s: float = CHECK_TIMEOUT_S) -> dict:
    """Microphones, audio outputs and the virtual camera (device path, or the reason and the fix)."""
    settings = settings if settings is not None else Settings()
    pa = guarded(PORTAUDIO, check_portaudio, timeout_s)
    holder: dict[str, Any] = {}

    def audio() -> Check:
        from avatarcam.audio import list_input_devices, list_output_devices

        holder["microphones"] = [_device_dict(d) for d in list_input_devices()]
        holder["outputs"] = [_device_dict(d) for d in list_output_devices()]
        return Check("audio devices", True, "")

    listed = guarded("audio devices", audio, timeout_s) if pa.ok else pa

    def camera() -> Check:
        holder["camera"] = probe_camera(settings)
        return Check(CAMERA, True, "")

    cam = guarded(CAMERA, camera, timeout_s)
    return {
        "portaudio": {"ok": bool(pa.ok), "detail": pa.detail, "fix": pa.fix},
        "audio_error": None if listed.ok else listed.detail,
        "microphones": holder.get("microphones", []),
        "outputs": holder.get("outputs", []),
        "camera": holder.get("camera") or {"available": False, "device": None, "backend": None,
                                           "reason": cam.detail, "fix": cam.fix},
    }


def format_devices(report: dict) -> str:
    """The `avatarcam devices` text: indexes and names as audio.mic / audio.delayed_output accept them."""
    lines: list[str] = []
    for title, key in (("Microphones (audio.mic)", "microphones"), ("Audio outputs (audio.delayed_output)", "outputs")):
        lines.append(f"{title}:")
        devices = report.get(key) or []
        if not devices:
            lines.append(f"  none found ({report.get('audio_error') or 'check the sound server'})")
        width = max((len(str(d["index"])) for d in devices), default=1)
        for d in devices:
            default = "  (default)" if d.get("is_default") else ""
            api = f"  [{d['hostapi']}]" if d.get("hostapi") else ""
            lines.append(f"  {d['index']:>{width}}  {d['name']}{api}  {d['channels']} ch, "
                         f"{d['default_rate']:g} Hz{default}")
    cam = report.get("camera") or {}
    lines.append("Virtual camera:")
    if cam.get("available"):
        lines.append(f"  {cam.get('device')} ({cam.get('backend')})")
    else:
        lines.append(f"  not available: {cam.get('reason')}")
        for part in (cam.get("fix") or "").splitlines():
            lines.append(f"  {part}")
    return "\n".join(lines)

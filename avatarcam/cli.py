"""The `avatarcam` command: run a stream headless, manage avatars, check the machine, benchmark.

Errors meant for the user (AvatarCamError) are printed as one line without a traceback and exit
with status 2; `--debug` shows tracebacks and debug logs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import secrets
import signal
import sys
import threading
from pathlib import Path

from . import __version__
from .errors import AvatarCamError, ConfigError

log = logging.getLogger("avatarcam")

# -- helpers ---------------------------------------------------------------------------------------
def _settings(args):
    from .config import apply_overrides, load_settings
    settings = load_settings(args.settings)
    overrides = {}
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value (e.g. camera.fps=30), got '{item}'")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    return apply_overrides(settings, overrides) if overrides else settings


def _stream_overrides(args) -> dict:
    out = {}
    for flag, key in (("style_anchor", "style_anchor"), ("rope_reindex", "rope_reindex"),
                      ("anchor_audio_zero", "anchor_audio_zero"), ("temporal_frames", "temporal_frames"),
                      ("block_frames", "block_frames"), ("passes", "passes")):
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    return out


def run_options(args, settings):
    """The stream `avatarcam run` streams: the settings' stream (as the tray app builds it) plus the flags."""
    from .stream_options import stream_options
    return stream_options(settings, avatar=args.avatar, model=args.model, device=args.device,
                          overrides=_stream_overrides(args))


# -- commands --------------------------------------------------------------------------------------
def cmd_run(args) -> int:
    from .session import Session
    settings = _settings(args)
    if args.mic is not None:
        settings.audio.mic = int(args.mic) if str(args.mic).isdigit() else args.mic
    if args.audio and args.mic is not None:
        raise ConfigError("use either --audio FILE or --mic DEVICE, not both")
    audio = Path(args.audio).expanduser() if args.audio else None
    if audio is not None and not audio.is_file():
        raise ConfigError(f"--audio: no such file: {audio}")
    out = Path(args.out).expanduser() if args.out else (Path(settings.output.record) if settings.output.record else None)
    if out is not None and out.suffix.lower() != ".mp4":
        raise ConfigError(f"--out must be an .mp4 file, got '{out}'")
    if out is not None and out.exists() and not args.force:
        raise ConfigError(f"--out: {out} already exists; add --force to overwrite it, or choose another name")
    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration must be positive seconds, got {args.duration}")
    options = run_options(args, settings)
    options = dataclasses.replace(options, audio_file=audio, camera=args.camera, record=out, obs=args.obs,
                                  duration_s=args.duration, seed=args.seed, realtime=args.realtime)
    if not args.debug:   # the session's warnings reach the terminal once, as events (below)
        logging.getLogger("avatarcam.session").setLevel(logging.ERROR)
    session = Session(settings, options)
    progress = _Progress(enabled=not args.quiet, total_s=_audio_seconds(audio, args.duration))
    session.on_event(progress.on_event)
    if not args.quiet:
        say(f"avatar {options.avatar_name}, model {options.model}")
    with StopOnSignals(session) as stopper:
        try:
            session.start()
            while not session.wait(0.5):
                pass
        finally:
            progress.close()
    stats = session.stats()
    if session.error is not None:
        raise session.error if isinstance(session.error, AvatarCamError) else AvatarCamError(
            f"the stream stopped with an error: {session.error}")
    if stopper.signal is not None:
        say(f"stopped by {stopper.signal}", err=True)
    if not args.quiet:
        say(summary_line(stats, realtime=session.realtime))
    rec = session.recording
    if rec is not None:
        if rec.written and rec.stopped:
            say(f"recording stopped early ({rec.stopped}); kept {rec.path} ({rec.seconds:.1f} s)")
        elif rec.written:
            say(f"wrote {rec.path} ({rec.seconds:.1f} s)")
        else:
            say(f"nothing recorded: {rec.path} was not written", err=True)
    return 0


def say(text: str, err: bool = False) -> None:
    """Print, unless the terminal is gone (SIGHUP): the run still finishes its files."""
    try:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
    except OSError:
        pass


def summary_line(stats, realtime: bool) -> str:
    """The run in one line; dropped audio, dropped/repeated frames and latency as they happened."""
    if stats.latency_s is not None:
        lat = f"latency {stats.latency_s * 1000:.0f} ms measured"
    elif realtime:
        lat = f"latency not measured (expected {stats.expected_latency_s * 1000:.0f} ms)"
    else:
        lat = "offline, not real time"
    video_s = stats.frames_generated / stats.fps if stats.fps else 0.0
    on = f" on {stats.engine}" if stats.engine else ""
    return (f"{stats.frames_generated} frames ({video_s:.1f} s) in {stats.elapsed_s:.1f} s{on} "
            f"(step p50 {stats.step_ms_p50:.1f} ms, p95 {stats.step_ms_p95:.1f} ms; {lat}; "
            f"dropped audio {stats.dropped_audio_s:.1f} s, dropped frames {stats.dropped_frames}, "
            f"repeated frames {stats.repeated_frames})")


class StopOnSignals:
    """Ctrl-C, SIGTERM and SIGHUP (terminal closed) end the stream the normal way: the mp4 is finished
    with the audio of its frames and OBS is put back. The handler only asks; the main thread waits."""

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self, session):
        self.session = session
        self.signal: str | None = None
        self._old: dict = {}

    def _handle(self, signum, _frame) -> None:
        self.signal = self.signal or signal.Signals(signum).name
        self.session.request_stop()

    def __enter__(self) -> "StopOnSignals":
        for name in self.NAMES:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _audio_seconds(audio: Path | None, duration: float | None) -> float | None:
    if audio is None:
        return duration
    try:
        from engine.config import SAMPLE_RATE
        from .audio import decode_audio_file
        secs = len(decode_audio_file(audio)) / SAMPLE_RATE
    except AvatarCamError:
        return duration
    return min(secs, duration) if duration else secs


class _Progress:
    """One self-overwriting stderr line: seconds of audio turned into video (off with --quiet).

    Why not tqdm: its process-wide lock, shared by the session's threads, the main thread and tqdm's
    monitor, was once left held and froze a run after SIGTERM with its stderr pipe gone. Here one
    small lock guards two writes, and a write that fails (terminal closed) just turns the line off.
    The line appears with the first frames, so a failed start is only its error line.
    """

    def __init__(self, enabled: bool, total_s: float | None):
        self.enabled = bool(enabled and (sys.stderr.isatty() or total_s))
        self.total_s = total_s
        self._on_line = False          # the cursor sits after the progress text
        self._lock = threading.Lock()

    def _put(self, text: str) -> None:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):  # terminal gone (SIGHUP) or stderr closed
            self.enabled = False

    def on_event(self, event) -> None:
        if event.kind == "error":         # the exception itself: say what kind of problem it was
            self.write(f"error: {type(event.data).__name__}: {event.data}")
        elif event.kind == "warning":
            self.write(f"warning: {event.data}")
        elif event.kind == "info":
            self.write(str(event.data))
        elif event.kind == "stats" and self.enabled:
            done = event.data.frames_generated / event.data.fps if event.data.fps else 0.0
            total = f"{self.total_s:.1f}" if self.total_s else "?"
            with self._lock:
                self._put(f"\rstreaming: {done:.1f}/{total} s audio, {event.data.elapsed_s:.0f} s")
                self._on_line = True

    def write(self, text: str) -> None:
        """A message on its own line, never glued to the progress text."""
        with self._lock:
            self._put(("\n" if self._on_line else "") + text + "\n")
            self._on_line = False

    def close(self) -> None:
        with self._lock:
            if self._on_line:
                self._put("\n")
                self._on_line = False


def _quiet_device_logs(args) -> None:
    """The report already says when no sound server answers: no duplicate log warnings."""
    if not args.debug:
        logging.getLogger("avatarcam.audio").setLevel(logging.ERROR)


def cmd_devices(args) -> int:
    from .doctor import devices_report, format_devices
    _quiet_device_logs(args)
    report = devices_report()
    print(json.dumps(report, indent=2, default=str) if args.json else format_devices(report))
    return 0


def cmd_doctor(args) -> int:
    from .doctor import all_ok, format_checks, run_checks
    _quiet_device_logs(args)
    try:
        settings = _settings(args)
    except ConfigError:      # a broken settings file is one of the checks (config dir), not the end
        settings = None
    checks = run_checks(settings, model=args.model, settings_path=Path(args.settings) if args.settings else None)
    print(format_checks(checks))
    return 1 if args.strict and not all_ok(checks) else 0


def cmd_avatars(args) -> int:
    from .avatars import AvatarLibrary, format_avatars, slugify
    from .config import save_settings
    lib = AvatarLibrary()
    settings = _settings(args)
    current = settings.avatar.current

    def is_current(name: str) -> bool:
        return bool(current) and slugify(current) == slugify(name)

    def set_current(name: str | None) -> None:
        settings.avatar.current = name
        save_settings(settings, args.settings)

    if args.action == "list":
        print(format_avatars(lib.list(), current))
    elif args.action == "new":
        look = None
        if args.look or args.random or args.key:
            from .looks import build_look
            seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
            look = build_look(seed, args.look, args.random, args.key)
        a = lib.new_cartoon(seed=args.seed, name=args.name, identity=look)
        print(f"created {a.name} ({a.image_path})")
        from .looks import key_warning
        note = key_warning(a.identity())
        if note:
            print(f"note: {note}", file=sys.stderr)
    elif args.action == "options":
        from .looks import format_options
        print(format_options())
    elif args.action == "add":
        a = lib.add_image(Path(args.image).expanduser(), name=args.name, prompt=args.prompt or "")
        print(f"added {a.name} ({a.image_path})")
        note = a.fit_advice()
        if note:
            print(f"note: {note}", file=sys.stderr)
    elif args.action == "use":
        a = lib.get(args.name)
        set_current(a.name)
        print(f"current avatar: {a.name} (`avatarcam run` streams it)")
    elif args.action == "remove":
        lib.remove(args.name)
        if is_current(args.name):
            set_current(None)
        print(f"removed {args.name}")
    elif args.action == "rename":
        a = lib.rename(args.name, args.new_name)
        if is_current(args.name):
            set_current(a.name)
        print(f"renamed {args.name} -> {a.name}")
    return 0


def cmd_bench(args) -> int:
    from .avatars import AvatarLibrary
    from .bench import run_bench
    from .stream_options import current_avatar, model_for
    settings = _settings(args)
    model = model_for(settings, args.model, current_avatar(settings, AvatarLibrary()))   # what `run` would load
    result = run_bench(args.what, out=Path(args.out) if args.out else None, steps=args.steps, quick=args.quick,
                       model=model, md=Path(args.md) if args.md else None)
    if args.what == "backends":
        from engine.tools.perf import format_table
        print(format_table(result))
        if args.md:
            print(f"wrote {args.md}")
    if args.what in ("backends", "tune") and not args.out:
        return 0
    if not args.out:
        print(json.dumps(result, indent=2))
    else:
        print(f"wrote {args.out}")
    return 0


def cmd_settings(args) -> int:
    from .config import default_settings_path, reset_settings, save_settings
    path = Path(args.settings) if args.settings else default_settings_path()
    if args.action == "path":          # works even when the file is broken
        print(path)
        return 0
    if args.action == "reset":
        backup = reset_settings(path)
        print(f"moved {path} to {backup}; defaults in use" if backup else f"no settings file at {path}; defaults in use")
        return 0
    bad = [p for p in args.pairs if "=" not in p]
    if bad:
        raise ConfigError(f"settings {args.action}: expected KEY=VALUE (e.g. camera.fps=30), got '{bad[0]}'")
    if args.pairs and args.action != "set":
        raise ConfigError("settings show takes no KEY=VALUE; use `avatarcam settings set KEY=VALUE`")
    args.set = (args.set or []) + list(args.pairs)
    settings = _settings(args)
    if args.action == "show":
        import yaml
        data = settings.to_dict()
        if data["obs"].get("password"):
            data["obs"]["password"] = "********"   # shown on screens and in bug reports: never the secret
        print(yaml.safe_dump(data, sort_keys=False), end="")
    elif args.action == "set":
        if not args.set:
            raise ConfigError("settings set: give KEY=VALUE, e.g. `avatarcam settings set camera.fps=30`")
        print(f"saved {save_settings(settings, args.settings)}")
    return 0


def cmd_models(args) -> int:
    from .model_import import format_report, import_model, verify_model
    from .models import format_list, list_models, write_model_checksums
    if args.models_cmd == "list":
        print(format_list(list_models()))
        return 0
    if args.models_cmd == "import":
        folder, report = import_model(args.dit, args.wan, args.wav2vec, name=args.name, copy=args.copy,
                                      config=args.config, t5=args.t5)
        print(format_report(report, f"imported {folder}"))
        return 0
    if args.models_cmd == "checksum":
        print(write_model_checksums(args.name))
        return 0
    report = verify_model(args.name)
    print(format_report(report, args.name))
    return 0 if report.ok else 2


def cmd_tray(args) -> int:
    """The desktop app runs as its own module (`python -m ui.app`): the app package never imports its UI."""
    import importlib.util
    import subprocess
    from .doctor import display_problem
    problem = display_problem()
    if problem:
        raise AvatarCamError(problem)
    if importlib.util.find_spec("PySide6") is None or importlib.util.find_spec("ui") is None:
        raise AvatarCamError("the desktop app needs PySide6: pip install 'avatarcam[ui]'")
    return subprocess.call([sys.executable, "-m", "ui.app", *([args.settings] if args.settings else [])])


# -- parser ----------------------------------------------------------------------------------------
def _bool_flag(p: argparse.ArgumentParser, name: str, help: str) -> None:
    p.add_argument(f"--{name}", dest=name.replace("-", "_"), action=argparse.BooleanOptionalAction, default=None,
                   help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatarcam", description="A live talking-avatar camera.")
    parser.add_argument("--version", action="version", version=f"avatarcam {__version__}")
    parser.add_argument("--debug", action="store_true", help="show debug logs and tracebacks")
    parser.add_argument("--settings", metavar="FILE", help="settings YAML (default: the user config dir)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="stream headless: microphone or audio file -> camera / mp4 / OBS")
    run.add_argument("--avatar", help="avatar name from the library, or an image file (default: your default avatar)")
    src = run.add_mutually_exclusive_group()
    src.add_argument("--mic", help="microphone name or index (default: from settings, else the system default)")
    src.add_argument("--audio", metavar="FILE", help="drive the avatar from an audio file instead of the mic")
    _bool_flag(run, "camera", "stream to the virtual camera (default: settings; --camera makes a missing camera an error)")
    run.add_argument("--out", metavar="FILE.mp4", help="also record an mp4 (H.264 + AAC, audio in sync)")
    run.add_argument("--force", action="store_true", help="overwrite the --out file if it exists")
    _bool_flag(run, "obs", "control OBS (scene on start/stop, mic sync offset = latency)")
    _bool_flag(run, "realtime", "pace an --audio file like a live mic (default: only when a camera is on)")
    run.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of audio")
    run.add_argument("--model", help="model name or card folder (default: the shipped 'toon' model)")
    run.add_argument("--device", help="torch device: auto, cpu, cuda (default: engine.device, auto)")
    run.add_argument("--seed", type=int, default=0, help="noise seed (same seed + input = same video)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. camera.fps=30")
    run.add_argument("-q", "--quiet", action="store_true")
    anchors = run.add_argument_group("anchors (ablations and tuning)")
    _bool_flag(anchors, "style-anchor", "keep the reference image's keys in the cache")
    _bool_flag(anchors, "rope-reindex", "rotate the style anchor to sit just before the window")
    _bool_flag(anchors, "anchor-audio-zero", "give the anchor silent (zero) audio features")
    anchors.add_argument("--temporal-frames", type=int, metavar="N", help="clean frames kept as temporal anchor")
    anchors.add_argument("--block-frames", type=int, metavar="B", help="latent frames per block")
    anchors.add_argument("--passes", type=int, metavar="N", help="model passes per step")
    run.set_defaults(func=cmd_run)

    dev = sub.add_parser("devices", help="list microphones, audio outputs and the virtual camera")
    dev.add_argument("--json", action="store_true")
    dev.set_defaults(func=cmd_devices)

    doc = sub.add_parser("doctor", help="check torch, audio, camera, OBS and model files; print fixes")
    doc.add_argument("--model", help="model name or card folder to check")
    doc.add_argument("--strict", action="store_true", help="exit 1 if any check fails")
    doc.set_defaults(func=cmd_doctor)

    av = sub.add_parser("avatars", help="manage the avatar library")
    avs = av.add_subparsers(dest="action", metavar="ACTION", required=True)
    avs.add_parser("list", help="list avatars")
    new = avs.add_parser("new", help="draw a new cartoon avatar")
    new.add_argument("--seed", type=int, help="generator seed (default: random)")
    new.add_argument("--name")
    new.add_argument("--look", action="append", default=[], metavar="FIELD=VALUE",
                     help="one creator control (repeatable), e.g. hair_style=bun shirt=3; see `avatars options`")
    new.add_argument("--random", action="append", default=[], metavar="FIELD",
                     help="draw this control afresh (repeatable)")
    new.add_argument("--key", choices=("green", "blue", "magenta"),
                     help="a green-screen background in this key colour (OBS removes it)")
    avs.add_parser("options", help="list every creator control and its choices")
    add = avs.add_parser("add", help="import an image file")
    add.add_argument("image")
    add.add_argument("--name")
    add.add_argument("--prompt")
    use = avs.add_parser("use", help="make an avatar the current one (what `run` streams)")
    use.add_argument("name")
    rm = avs.add_parser("remove", help="delete an avatar")
    rm.add_argument("name")
    rn = avs.add_parser("rename", help="rename an avatar")
    rn.add_argument("name")
    rn.add_argument("new_name")
    av.set_defaults(func=cmd_avatars)

    b = sub.add_parser("bench", help="benchmarks that write JSON")
    b.add_argument("what", choices=["engine", "e2e", "soak", "backends", "tune"],
                   help="engine: sampler; e2e: audio->frames; soak: long run; backends: every CPU variant x "
                        "instruction-set limit on one core (docs/performance.md); tune: measure and keep the "
                        "fastest variant for this machine (what `run` uses with engine.backend=auto)")
    b.add_argument("--model", default=None, help="model name or card folder (default: engine.model)")
    b.add_argument("--md", metavar="FILE.md", help="backends: also write the table as markdown")
    b.add_argument("--out", metavar="FILE.json")
    b.add_argument("--steps", type=int, default=None, help="engine steps / seconds of audio (defaults per benchmark)")
    b.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    b.set_defaults(func=cmd_bench)

    st = sub.add_parser("settings", help="show or change the settings file")
    st.add_argument("action", choices=["show", "path", "set", "reset"],
                    help="set KEY=VALUE...; reset moves the file aside (kept as a .bak) and uses defaults")
    st.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    st.add_argument("--set", action="append", metavar="KEY=VALUE")
    st.set_defaults(func=cmd_settings)

    m = sub.add_parser("models", help="list, import and verify models")
    ms = m.add_subparsers(dest="models_cmd", metavar="ACTION", required=True)
    ms.add_parser("list", help="shipped and imported models")
    imp = ms.add_parser("import", help="import the paper model (AvatarForcing 1.3B) from your downloads")
    imp.add_argument("--dit", required=True, help="AvatarForcing checkpoints/model.pt")
    imp.add_argument("--wan", required=True, help="Wan2.1-T2V-1.3B folder (VAE, umT5, tokenizer)")
    imp.add_argument("--wav2vec", required=True, help="wav2vec2-base-960h folder")
    imp.add_argument("--t5", help="optional HF-format umT5 encoder folder (default: the Wan download's umT5 .pth)")
    imp.add_argument("--name")
    imp.add_argument("--copy", action="store_true", help="copy the files (GBs) into the model folder")
    imp.add_argument("--config", choices=["paper", "tiny"], default="paper")
    ver = ms.add_parser("verify", help="re-check a model's files (checksums, every tensor)")
    ver.add_argument("name")
    cks = ms.add_parser("checksum", help="(re)write a model folder's checksums.yaml after changing its files")
    cks.add_argument("name", help="model name or card folder")
    m.set_defaults(func=cmd_models)

    tray = sub.add_parser("tray", help="start the desktop app (tray icon + window)")
    tray.set_defaults(func=cmd_tray)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except AvatarCamError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so, and how to see more
        if args.debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc}\n(run with --debug for the traceback, and please "
              "report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

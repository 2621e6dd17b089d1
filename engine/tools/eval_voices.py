"""The evaluation's voices section: does the mouth follow speech it never heard, and stay shut for
everything that is not speech?

    python -m engine.tools.eval --only voices [--model engine/models/toon] [--vad off|on|both] [--quick]
                                [--voices-out docs/eval_voices.json] [--voices-report docs/eval_voices.md]

Why these sets: a model that learned one synthesiser can score well on that synthesiser alone.
Each family set speaks with voices no training clip uses (engine.clips.voices.HELD_OUT),
clean and at ordinary levels, with the synthesiser's own phoneme timings as ground truth; the
perturbed set adds speed/pitch/vocal-tract changes, rooms, microphones, codecs, clipping and
whisper-to-shout levels. The non-speech set plays every sound kind at speech loudness with
silence between them. Frames are read with the mouth probe (open, width, round), compared with
the controls the renderer was driven with. Streams run in this process, one torch thread.

Measures: lip sync (Pearson r of probe openness vs ground truth, best lag; lag k > 0: the video is
k frames late), amplitude (mean openness while speaking / the ground truth's), visemes (r of
width and roundness while speaking, at the best lag of openness), openness during each sound vs
in silence, and all of it with and without the voice-activity gate (engine.codecs.vad).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.config import SAMPLE_RATE

log = logging.getLogger(__name__)

SPEAKING = 0.02              # ground-truth openness at or above this: speaking
TRIM = 3                     # frames left out at each edge of a sound or a silence (motion, latency)
TARGET_R, TARGET_LAG, FAMILY_MARGIN = 0.85, 1, 0.05
AMPLITUDE_BAND = (0.7, 1.3)
NONSPEECH_RATIO = 1.5


@dataclass
class VoicesConfig:
    """Sizes of the voices evaluation; `quick()` shrinks them for tests."""

    model: str = "toon"
    probe: str | None = None
    family_seconds: float = 12.0          # held-out speech per synthesiser family
    perturbed_seconds: float = 16.0       # held-out voices through voice changes and microphones
    clip_seconds: float = 4.0
    sound_seconds: float = 1.2            # each instance of a non-speech kind ...
    gap_seconds: float = 1.0              # ... with this much silence before it
    repeats: int = 2                      # instances of each kind (other seeds)
    kinds: tuple[str, ...] = ()           # non-speech kinds (empty: every kind)
    vad: str = "both"                     # off | on | both (on: the gated runs of the non-speech, espeak, perturbed sets)
    first_seed: int = 200000
    max_lag: int = 6
    threads: int = 1
    seed: int = 0
    rig: bool = True                      # cartoon avatars drawn by their rig, as the app does (False: learned decoder)

    @classmethod
    def quick(cls, **changes) -> "VoicesConfig":
        base = dict(family_seconds=3.0, perturbed_seconds=3.0, clip_seconds=3.0, sound_seconds=0.8,
                    gap_seconds=0.8, repeats=1, kinds=("tone", "keyboard"))
        base.update(changes)
        return cls(**base)

    def __post_init__(self) -> None:
        if self.vad not in ("off", "on", "both"):
            raise ValueError(f"--vad must be off, on or both, got {self.vad!r}")


# -- programs: audio and per-frame ground truth -------------------------------------------------------
@dataclass
class Segment:
    """One stream's worth: audio, the renderer's controls per frame (open, width, round, ...), the avatar,
    and for non-speech the kind playing in each frame ("" for silence)."""

    audio: np.ndarray
    truth: np.ndarray
    avatar: int
    voice: str = ""
    labels: list[str] = field(default_factory=list)


@dataclass
class Program:
    name: str
    segments: list[Segment]


def avatar_of(cfg: "VoicesConfig", i: int) -> int:
    """Clip i of every set is drawn with the same avatar, so sets differ only in what is heard."""
    return cfg.first_seed + 100 + i


def speech_program(name: str, audio_cfg, first_seed: int, cfg: "VoicesConfig", seconds: float, fps: float) -> Program:
    """Held-out clips of one audio recipe (each brings its own pauses), one stream each."""
    from engine.clips.clip import make_clip
    spf = int(round(SAMPLE_RATE / fps))
    segments = []
    for i in range(max(1, int(round(seconds / cfg.clip_seconds)))):
        clip = make_clip(first_seed + i, fps, cfg.clip_seconds, audio=audio_cfg)
        segments.append(Segment(clip.audio[: clip.n_frames * spf], clip.controls, avatar_of(cfg, i),
                                voice=getattr(clip.voice, "label", str(clip.voice))))
    return Program(name, segments)


def nonspeech_program(kinds: list[str], cfg: "VoicesConfig", level: float, fps: float) -> Program:
    """Silence, then each kind at speech loudness `level` (`repeats` instances, kinds interleaved), silence
    between and after; the ground-truth mouth is shut throughout."""
    from engine.clips.scene import loudness
    from engine.clips.sounds import make_sound
    spf = int(round(SAMPLE_RATE / fps))
    gap, sound = int(round(cfg.gap_seconds * fps)), int(round(cfg.sound_seconds * fps))
    rng = np.random.default_rng([cfg.first_seed, 11])
    parts, labels = [], []
    for r in range(cfg.repeats):
        for i, kind in enumerate(kinds):
            x = make_sound(kind, cfg.first_seed + 100 * r + i, sound * spf / SAMPLE_RATE)
            gain = min(level / max(loudness(x), 1e-9), 0.9)
            parts += [rng.standard_normal(gap * spf).astype(np.float32) * 1e-4, gain * x]
            labels += [""] * gap + [kind] * sound
    parts.append(rng.standard_normal(gap * spf).astype(np.float32) * 1e-4)
    labels += [""] * gap
    truth = np.zeros((len(labels), 7), np.float32)
    truth[:, 1] = 0.5      # a shut mouth at rest width
    return Program("nonspeech", [Segment(np.concatenate(parts).astype(np.float32), truth, avatar_of(cfg, 0),
                                         labels=labels)])


def evaluation_programs(cfg: VoicesConfig, fps: float) -> list[Program]:
    """One clean set per synthesiser family (held-out voices), the perturbed set, the non-speech set."""
    from engine.clips.scene import ClipAudio, loudness
    from engine.clips.sounds import KINDS
    from engine.clips.voices import FAMILIES
    clean = dict(held_out=True, voice_change=0.0, microphone=0.0, bed=0.0, events=0.0, no_speech=0.0,
                 level_dbfs=(-20.0, -3.0), noise_floor_dbfs=(-80.0, -60.0))
    out = []
    for i, family in enumerate(FAMILIES):
        out.append(speech_program(family, ClipAudio(families={family: 1.0}, **clean), cfg.first_seed + 1000 * i,
                                  cfg, cfg.family_seconds, fps))
    perturbed = ClipAudio(families={f: 1.0 for f in FAMILIES}, held_out=True, voice_change=1.0, microphone=1.0,
                          bed=0.0, events=0.0, no_speech=0.0)
    out.append(speech_program("perturbed", perturbed, cfg.first_seed + 5000, cfg, cfg.perturbed_seconds, fps))
    level = float(np.median([loudness(g.audio) for p in out[: len(FAMILIES)] for g in p.segments]))
    out.append(nonspeech_program(list(cfg.kinds) or sorted(KINDS), cfg, level, fps))
    return out


# -- one stream ---------------------------------------------------------------------------------------
def truth_mouth(stream, identity, controls: np.ndarray, probe, batch: int = 25) -> np.ndarray:
    """The probe's (open, width, round) on the ground truth drawn through this stream's decoder: what a
    perfect model would score, so the generated frames' numbers can be read against it."""
    import torch
    from engine.toon.render import FaceControls, render_frame
    reads = []
    for a in range(0, len(controls), batch):
        drawn = [render_frame(identity, FaceControls.from_array(c), stream.size[1]) for c in controls[a:a + batch]]
        reads.append(probe.read(stream.decoder.decode(torch.stack([stream.decoder.encode_image(f) for f in drawn]))))
    return np.concatenate(reads)


def stream_mouth(card, segment: Segment, probe, vad: bool, seed: int, ceiling: bool = False, rig: bool = True) -> dict:
    """Stream the segment a block at a time; the probe's (open, width, round) for every frame."""
    from engine.stream import AvatarStream
    from engine.toon.identity import random_identity
    from engine.toon.render import render_portrait
    stream = AvatarStream(card, seed=seed, vad=vad)
    identity = random_identity(segment.avatar)
    stream.start(render_portrait(identity, card.width), identity=identity if rig else None)
    chunk = stream.frames_per_block * int(round(SAMPLE_RATE / card.fps))
    reads, t0 = [], time.perf_counter()
    for i in range(0, len(segment.audio), chunk):
        frames = stream.push_audio(segment.audio[i:i + chunk])
        if frames:
            reads.append(probe.read(np.stack(frames)))
    frames = stream.flush()
    if frames:
        reads.append(probe.read(np.stack(frames)))
    mouth = np.concatenate(reads)[: len(segment.truth)] if reads else np.zeros((0, 3), np.float32)
    out = {"mouth": mouth, "wall_s": time.perf_counter() - t0, "decoder": "rig" if stream.decoder.rigged else "learned"}
    if vad:
        out["vad_open_fraction"] = stream.audio.speech_chunks / max(1, stream.audio.chunks)
    if ceiling:
        out["ceiling"] = truth_mouth(stream, identity, segment.truth, probe)
    return out


# -- measures -----------------------------------------------------------------------------------------
def _shift(truth: np.ndarray, gen: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (truth[t], gen[t + lag]) over the frames both have."""
    n = min(len(truth), len(gen))
    return (truth[: n - lag], gen[lag:n]) if lag >= 0 else (truth[-lag:n], gen[: n + lag])


def speech_measures(pairs: list[tuple[np.ndarray, np.ndarray]], max_lag: int) -> dict:
    """Lip sync, amplitude and visemes of one speech set: (ground-truth controls, probe reads) per stream."""
    from engine.tools.lipsync import best_lag, pearson, silence_stats
    pairs = [(t[: len(m), :3], m[: len(t)]) for t, m in pairs]
    sync = best_lag([(t[:, 0], m[:, 0]) for t, m in pairs], max_lag)
    shifted = [_shift(t, m, sync["best_lag"]) for t, m in pairs]
    t, g = np.concatenate([a for a, _ in shifted]), np.concatenate([b for _, b in shifted])
    speaking = t[:, 0] >= SPEAKING
    slope = float(np.polyfit(t[speaking, 0], g[speaking, 0], 1)[0]) if speaking.sum() > 2 else float("nan")
    rounded, wide = speaking & (t[:, 2] > 0.5), speaking & (t[:, 1] > 0.7)
    quiet = silence_stats(np.concatenate([a[:, 0] for a, _ in pairs]), np.concatenate([b[:, 0] for _, b in pairs]))
    return {
        "frames": int(sum(len(a) for a, _ in pairs)), "best_lag": sync["best_lag"], "r_best": sync["r_best"],
        "r_lag0": sync["r_lag0"],
        "amplitude": float(g[speaking, 0].mean() / max(t[speaking, 0].mean(), 1e-9)) if speaking.any() else float("nan"),
        "slope": slope,
        "r_width": pearson(t[speaking, 1], g[speaking, 1]), "r_round": pearson(t[speaking, 2], g[speaking, 2]),
        "round_when_rounded": float(g[rounded, 2].mean()) if rounded.any() else float("nan"),
        "round_when_wide": float(g[wide, 2].mean()) if wide.any() else float("nan"),
        "width_when_wide": float(g[wide, 1].mean()) if wide.any() else float("nan"),
        "width_when_rounded": float(g[rounded, 1].mean()) if rounded.any() else float("nan"),
        "silent_mean_open": quiet["silent_mean_open"], "speaking_mean_open": quiet["speaking_mean_open"],
    }


def nonspeech_measures(labels: list[str], mouth: np.ndarray) -> dict:
    """Mean openness during each kind (edges trimmed) against the silences between them."""
    opened = mouth[:, 0]
    n = min(len(labels), len(opened))
    spans: dict[str, list[np.ndarray]] = {}
    a = 0
    while a < n:
        b = a
        while b < n and labels[b] == labels[a]:
            b += 1
        if b - a > 2 * TRIM:
            spans.setdefault(labels[a], []).append(opened[a + TRIM:b - TRIM])
        a = b
    quiet = spans.pop("", [])
    silence = float(np.concatenate(quiet).mean()) if quiet else float("nan")
    kinds = {}
    for kind, parts in spans.items():
        mean = float(np.concatenate(parts).mean())
        kinds[kind] = {"mean_open": mean, "ratio_to_silence": mean / silence if silence > 1e-6 else float("nan"),
                       "p90_open": float(np.percentile(np.concatenate(parts), 90))}
    return {"silence_mean_open": silence, "kinds": kinds}


def targets(result: dict) -> dict:
    """Met / missed per the issue: r and lag per family, families within a margin of espeak, amplitude, non-speech."""
    sets = result["sets"]["off"]
    fam = {k: v for k, v in sets.items() if k not in ("perturbed", "nonspeech")}
    espeak_r = fam.get("espeak", {}).get("r_best") or float("nan")
    out = {f"{k}_r_ge_{TARGET_R}_lag_le_{TARGET_LAG}": (v["r_best"] or 0) >= TARGET_R and abs(v["best_lag"]) <= TARGET_LAG
           for k, v in fam.items()}
    for k, v in sets.items():
        if k != "nonspeech" and k != "espeak":
            out[f"{k}_within_{FAMILY_MARGIN}_of_espeak"] = (v["r_best"] or 0) >= espeak_r - FAMILY_MARGIN
        if k != "nonspeech":
            out[f"{k}_amplitude_within_30pct"] = AMPLITUDE_BAND[0] <= (v["amplitude"] or 0) <= AMPLITUDE_BAND[1]
    ns = sets.get("nonspeech")
    if ns:
        for kind, v in ns["kinds"].items():
            out[f"nonspeech_{kind}_le_{NONSPEECH_RATIO}x_silence"] = (v["ratio_to_silence"] or 1e9) <= NONSPEECH_RATIO
    return out


# -- the run ------------------------------------------------------------------------------------------
def evaluate(cfg: VoicesConfig) -> dict:
    """Every set, with the gate off (and on, where asked); the JSON-ready result."""
    import torch
    from engine.card import resolve_card
    from engine.tools.probe import MouthProbe
    from engine.tools.results import clean, portable
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_start = time.time()
    card = resolve_card(cfg.model)
    probe = MouthProbe.load(cfg.probe)
    programs = evaluation_programs(cfg, card.fps)
    log.info("voices: %d sets ready (%.1f s)", len(programs), time.time() - t_start)
    modes = {"off": [False], "on": [True], "both": [False, True]}[cfg.vad]
    gated = {"espeak", "perturbed", "nonspeech"}       # the gate's cost and benefit; keeps the run short
    sets: dict[str, dict] = {}
    walls: dict[str, float] = {}
    decoders: set[str] = set()
    for vad in modes:
        key = "on" if vad else "off"
        sets[key] = {}
        for prog in programs:
            if vad and cfg.vad == "both" and prog.name not in gated:
                continue
            ceiling = not vad and prog.name != "nonspeech"
            recs = [stream_mouth(card, g, probe, vad, cfg.seed, ceiling=ceiling, rig=cfg.rig) for g in prog.segments]
            decoders.add(recs[0]["decoder"])
            walls[f"{prog.name}:{key}"] = float(sum(r["wall_s"] for r in recs))
            log.info("%s (vad %s): %d frames in %.0f s", prog.name, key, sum(len(r["mouth"]) for r in recs),
                     walls[f"{prog.name}:{key}"])
            if prog.name == "nonspeech":
                m = nonspeech_measures(prog.segments[0].labels, recs[0]["mouth"])
            else:
                m = speech_measures([(g.truth, r["mouth"]) for g, r in zip(prog.segments, recs)], cfg.max_lag)
                m["voices"] = sorted({g.voice for g in prog.segments})
                m["seconds"] = sum(len(g.truth) for g in prog.segments) / card.fps
            if vad:
                m["vad_open_fraction"] = float(np.mean([r["vad_open_fraction"] for r in recs]))
            if ceiling:
                m["ceiling"] = {k: v for k, v in speech_measures([(g.truth, r["ceiling"]) for g, r in
                                                                  zip(prog.segments, recs)], cfg.max_lag).items()
                                if k in ("r_lag0", "amplitude", "r_width", "r_round", "silent_mean_open")}
            sets[key][prog.name] = m
    result = {
        "model": {"name": card.name, "folder": portable(card.root), "fps": card.fps,
                  "decoder": ", ".join(sorted(decoders))},
        "settings": {**dataclasses.asdict(cfg), "speaking": f"ground-truth openness >= {SPEAKING}",
                     "lag_convention": "lag k > 0: generated frame t+k matches ground truth t (video late)",
                     "nonspeech_level": "each sound at the median loudness (90th percentile of 20 ms RMS) of the "
                                        "clean family sets"},
        "sets": sets,
        "timing": {"wall_s": time.time() - t_start, "streams": walls, "torch_threads": cfg.threads},
    }
    result["targets"] = targets(clean(result))
    return clean(result)


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def report(result: dict) -> str:
    """The markdown page: every set with the gate off (and on), the non-speech kinds, the targets."""
    s = result["settings"]
    lines = [f"# Voices and sounds: the `{result['model']['name']}` model", "",
             "Written by `python -m engine.tools.eval --only voices` (numbers in the JSON beside this page). "
             f"Wall time {result['timing']['wall_s'] / 60:.1f} min, {result['timing']['torch_threads']} torch thread. "
             f"Frames drawn by: {'the cartoon rig (engine/codecs/rigdecoder.py), as the app draws cartoon avatars' if result['model'].get('decoder') == 'rig' else 'the learned decoder'}.",
             "", " ".join(__doc__.split("\n\n")[2].split()), "",
             f"Speaking: {s['speaking']}. Lag: {s['lag_convention']}. Non-speech level: {s['nonspeech_level']}.", "",
             "## Speech", "",
             "| set | gate | voices | best lag | r best | r lag 0 | amplitude | slope | r width | r round | "
             "round when O/U | round when E/I | openness in silence | gate open |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, sets in result["sets"].items():
        for name, m in sets.items():
            if name == "nonspeech":
                continue
            lines.append(f"| {name} | {key} | {', '.join(m['voices'])} | {m['best_lag']} | {_fmt(m['r_best'])} | "
                         f"{_fmt(m['r_lag0'])} | {_fmt(m['amplitude'], 2)} | {_fmt(m['slope'], 2)} | "
                         f"{_fmt(m['r_width'])} | {_fmt(m['r_round'])} | {_fmt(m['round_when_rounded'], 2)} | "
                         f"{_fmt(m['round_when_wide'], 2)} | {_fmt(m['silent_mean_open'])} | "
                         f"{_fmt(m.get('vad_open_fraction'), 2)} |")
            c = m.get("ceiling")
            if c:
                lines.append(f"| {name}: ground truth through the decoder | | | | | {_fmt(c['r_lag0'])} | "
                             f"{_fmt(c['amplitude'], 2)} | | {_fmt(c['r_width'])} | {_fmt(c['r_round'])} | | | "
                             f"{_fmt(c['silent_mean_open'])} | |")
    lines += ["", "The \"ground truth through the decoder\" rows are the probe on the renderer's own frames for the "
                  "same controls after the decoder's round trip: what a perfect model would score here."]
    lines += ["", "## Non-speech at speech loudness (the mouth should stay shut)", "",
              "| kind | gate | mean openness | ratio to silence | p90 openness |", "|---|---|---|---|---|"]
    for key, sets in result["sets"].items():
        ns = sets.get("nonspeech")
        if not ns:
            continue
        lines.append(f"| silence | {key} | {_fmt(ns['silence_mean_open'])} | 1 | |")
        for kind, v in ns["kinds"].items():
            lines.append(f"| {kind} | {key} | {_fmt(v['mean_open'])} | {_fmt(v['ratio_to_silence'], 2)} | "
                         f"{_fmt(v['p90_open'])} |")
    lines += ["", "## Targets (gate off)", ""]
    lines += [f"- {k.replace('_', ' ')}: **{'met' if ok else 'MISSED'}**" for k, ok in result["targets"].items()]
    return "\n".join(lines) + "\n"


def write(result: dict, out: str | None, report_path: str | None) -> None:
    from engine.files import atomic_write_text
    from engine.tools.results import write_json
    if out:
        write_json(result, out)
        log.info("wrote %s", out)
    if report_path:
        atomic_write_text(Path(report_path), report(result), mode=0o644)
        log.info("wrote %s", report_path)

"""Evaluate a toon model card: lip sync, stability over a long rollout, and the anchor ablations.

    python -m engine.tools.eval [--model engine/models/toon] [--ode-student PATH] [--quick]
                                [--out docs/eval_toon.json] [--plot docs/eval_toon.png] [--report docs/eval_toon.md]
    python -m engine.tools.eval --rerender      (no streaming: targets, plot and report again from the JSON)

Full size (6 x 8 s lip sync, 10-minute rollout, 7 ablations x 100 s) took 14.5 min with 2 worker
processes on a 2-core CPU; shrink with --rollout-seconds / --ablation-seconds on a busier machine.

Why these measurements: the ground truth of a held-out clip (seeds >= 100000: voices, texts and
identities the model never saw) is the mouth_open track the renderer was driven with. The model's
frames are read back with the mouth probe (`engine.tools.probe`), so lip sync is a correlation between
two per-frame signals, stability is the distance of generated frames to the reference portrait as
the stream goes on, and each ablation switches off one anchor of the sampler (StreamConfig) on the
same audio. Everything goes through the public AvatarStream API, audio pushed one block at a time
like a live microphone, every frame decoded.

Lag convention: lag k > 0 means generated frame t + k matches ground-truth frame t, i.e. the
video's mouth is k frames LATE relative to the audio (k < 0: early).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.config import SAMPLE_RATE
from engine.tools.lipsync import (CLOSED_TARGET, SILENT_LEVEL, SILENT_RUN, SILENT_TRIM, best_lag, pearson,
                                  silence_stats, silent_mask)
from engine.tools.results import REPO, clean, portable, write_json

log = logging.getLogger(__name__)

DEFAULT_ODE_STUDENT = REPO / "runs" / "toon" / "ode" / "student.safetensors"
# an ablation counts as worse than the full model only beyond these margins (noise between runs)
DRIFT_MARGIN = 0.005     # |drift| larger by more than half a percentage point
REL_MARGIN = 0.02        # distance / jitter larger by more than 2 %
R_MARGIN = 0.02          # lip-sync correlation lower by more than 0.02
PEAK_R = 0.3             # below this best correlation there is no lag to speak of

# name -> (AvatarStream overrides, baseline sampler?, use the ODE student's weights?)
VARIANTS: dict[str, tuple[dict, bool, bool]] = {
    "full": ({}, False, False),
    "no_style_anchor": ({"style_anchor": False}, False, False),
    "no_temporal_anchor": ({"temporal_frames": 0}, False, False),
    "no_anchor_audio_zero": ({"anchor_audio_zero": False}, False, False),
    "no_rope_reindex": ({"rope_reindex": False}, False, False),
    "self_forcing_1step": ({"timesteps": (1000.0,)}, True, False),
    "ode_student_no_dmd": ({}, False, True),
}
ANCHOR_VARIANTS = ("no_style_anchor", "no_temporal_anchor", "no_anchor_audio_zero", "no_rope_reindex")


@dataclass
class EvalConfig:
    """Sizes of every part; `quick()` shrinks them for tests and smoke runs."""

    model: str = "toon"
    ode_student: str | None = None           # default: runs/toon/ode/student.safetensors when it exists
    probe: str | None = None                 # default: the shipped engine/models/toon/mouth_probe
    first_seed: int = 100000                 # held-out clip seeds (training used 0..159)
    lipsync_clips: int = 6
    lipsync_seconds: float = 8.0
    rollout_seconds: float = 600.0
    segment_seconds: float = 60.0            # stability is reported per segment ("per minute")
    ablation_seconds: float = 100.0
    clip_seconds: float = 8.0                # held-out clips concatenated into the long audio
    gap_seconds: tuple[float, float] = (0.5, 3.0)   # silence between them (uniform, seeded)
    max_lag: int = 6
    workers: int = 2                         # processes (1: everything in this process)
    threads: int = 1                         # torch threads per process
    seed: int = 0                            # sampler noise seed
    ablations: tuple[str, ...] = tuple(VARIANTS)
    picture_avatars: int = 4                 # held-out avatars (glasses and hats among them) for the picture
    picture_seconds: float = 60.0            # ... each on this much held-out speech with silences
    creator_avatars: int = 2                 # creator-made mixes (engine.tools.eval_creator), on the same speech
    sheets: str | None = None                # contact sheets: <sheets>_frames.png and <sheets>_eyes.png
    rig: bool = True                         # cartoon avatars drawn by their rig (False: the learned decoder)

    @classmethod
    def quick(cls, **changes) -> "EvalConfig":
        base = dict(lipsync_clips=2, lipsync_seconds=3.0, rollout_seconds=12.0, segment_seconds=3.0,
                    ablation_seconds=6.0, clip_seconds=3.0, gap_seconds=(0.4, 1.0), workers=1,
                    picture_avatars=1, picture_seconds=8.0, creator_avatars=1)
        base.update(changes)
        return cls(**base)


# -- pictures ---------------------------------------------------------------------------------------------
def hist_distance(frame: np.ndarray, ref_hist: np.ndarray) -> float:
    """Total-variation distance (0..1) between 16-bin per-channel colour histograms, averaged over channels."""
    return float(0.5 * np.abs(colour_hist(frame) - ref_hist).sum(1).mean())


def colour_hist(frame: np.ndarray) -> np.ndarray:
    bins = (np.asarray(frame, np.uint8) >> 4).reshape(-1, 3)
    h = np.stack([np.bincount(bins[:, c], minlength=16) for c in range(3)]).astype(np.float64)
    return h / h.sum(1, keepdims=True)


# -- held-out audio -------------------------------------------------------------------------------------
@dataclass
class Program:
    """Audio and the per-frame ground truth (every control; `truth`: mouth_open) of a stretch of held-out speech."""

    audio: np.ndarray
    controls: np.ndarray                    # (frames, len(CONTROL_NAMES)): the clips' own faces, neutral in gaps
    seeds: list[int] = field(default_factory=list)

    @property
    def truth(self) -> np.ndarray:
        return self.controls[:, 0]


def heldout_program(first_seed: int, seconds: float, clip_seconds: float, gap_seconds: tuple[float, float],
                    fps: float = 25.0, seed: int = 0) -> Program:
    """Held-out clips back to back with silent gaps, cut to `seconds`."""
    from engine.clips.clip import make_clip
    from engine.toon.render import FaceControls
    spf = int(round(SAMPLE_RATE / fps))
    n_frames = int(round(seconds * fps))
    rng = np.random.default_rng(seed)
    neutral = FaceControls().as_array()
    audio, controls, seeds, frames = [], [], [], 0
    s = first_seed
    while frames < n_frames:
        clip = make_clip(s, fps, clip_seconds)
        seeds.append(s)
        audio.append(clip.audio[: clip.n_frames * spf]), controls.append(clip.controls)
        gap = int(round(rng.uniform(*gap_seconds) * fps))
        audio.append((rng.standard_normal(gap * spf) * 1e-4).astype(np.float32))
        controls.append(np.tile(neutral, (gap, 1)))
        frames += clip.n_frames + gap
        s += 1
    faces = np.concatenate(controls)[:n_frames].astype(np.float32)
    return Program(np.concatenate(audio)[: n_frames * spf].astype(np.float32), faces, seeds)


# -- one stream, measured frame by frame ------------------------------------------------------------------
@dataclass
class StreamJob:
    name: str
    card: str                       # card folder
    audio: np.ndarray
    avatar_seed: int
    overrides: dict = field(default_factory=dict)
    baseline: bool = False
    weights: str | None = None      # other weights for the same architecture (the ODE student)
    probe: str | None = None
    seed: int = 0
    threads: int = 1
    truth_controls: np.ndarray | None = None   # also probe these controls' rendered round trips (the ceiling)
    picture: bool = False           # also record the picture measures (engine.tools.eval_picture) and keep frames
    rig: bool = True                # draw the cartoon avatar with its rig when the card has a reader
    creator: bool = False           # the avatar is engine.toon.creator.sample_creator(avatar_seed)
    drawn: np.ndarray | None = None  # no model: the rig draws these controls (the ground truth's own frames)


def truth_round_trip_open(stream, identity, controls: np.ndarray, probe) -> np.ndarray:
    """Probe openness on the ground truth itself: rendered frames after the decoder's encode/decode.

    Why: this is the best lip-sync score a perfect model could get through this decoder and probe,
    the ceiling the generated frames are measured against.
    """
    import torch
    from engine.toon.render import FaceControls, render_frame
    out = []
    for a in range(0, len(controls), 25):
        frames = [render_frame(identity, FaceControls.from_array(c), stream.size[1]) for c in controls[a:a + 25]]
        latents = torch.stack([stream.decoder.encode_image(f) for f in frames])
        out.append(probe.read_open(stream.decoder.decode(latents)))
    return np.concatenate(out)


def run_stream(job: StreamJob) -> dict:
    """Stream the audio one block at a time; per frame: distance to reference, probe, frame change."""
    import torch
    from engine.card import load_card
    from engine.stream import AvatarStream
    from engine.tools.probe import MouthProbe
    from engine.toon import random_identity, render_portrait
    from engine.toon.creator import sample_creator

    if job.threads:
        torch.set_num_threads(job.threads)
    card = load_card(job.card)
    if job.weights:
        card = dataclasses.replace(card, weights=str(Path(job.weights).resolve()))
    stream = AvatarStream(card, seed=job.seed, baseline=job.baseline, **job.overrides)
    probe = MouthProbe.load(job.probe)
    identity = sample_creator(job.avatar_seed) if job.creator else random_identity(job.avatar_seed)
    stream.start(render_portrait(identity, card.width), identity=identity if job.rig else None)
    reference = stream.decoder.decode(stream.sampler.ref)[0]      # the portrait as the decoder draws it
    ref_f = reference.astype(np.float32)
    ref_hist = colour_hist(reference)
    top, bottom = (int(round(v * card.height / probe.cfg.frame_size)) for v in probe.cfg.crop[:2])
    left, right = (int(round(v * card.width / probe.cfg.frame_size)) for v in probe.cfg.crop[2:])
    outside = np.ones(reference.shape[:2], bool)
    outside[top:bottom, left:right] = False

    n = int(round(len(job.audio) * card.fps / SAMPLE_RATE))
    rec = {k: np.full(n, np.nan, np.float32) for k in ("mad", "hist", "open", "change", "change_outside")}
    pic = None
    if job.picture:
        from engine.tools.eval_picture import Geometry, PictureRecorder
        pic = PictureRecorder(Geometry.of(job.avatar_seed, card.width, identity), n)
        outside = pic.geo.outside_mouth()
    prev: np.ndarray | None = None
    done = 0
    t0 = last_log = time.perf_counter()

    def consume(frames: list[np.ndarray]) -> None:
        nonlocal prev, done
        frames = frames[: n - done]
        if not frames:
            return
        opened = probe.read_open(np.stack(frames))
        for f, o in zip(frames, opened):
            ff = f.astype(np.float32)
            rec["mad"][done] = np.abs(ff - ref_f).mean()
            rec["hist"][done] = hist_distance(f, ref_hist)
            rec["open"][done] = o
            if prev is not None:
                d = np.abs(ff - prev).mean(-1)
                rec["change"][done] = d.mean()
                rec["change_outside"][done] = d[outside].mean()
            if pic is not None:
                pic.add(done, f, float(o))
            prev = ff
            done += 1

    if job.drawn is not None:
        from engine.toon.render import FaceControls, render_frame
        for a in range(0, n, 25):
            consume([render_frame(identity, FaceControls.from_array(c), card.width) for c in job.drawn[a:a + 25]])
    else:
        chunk = stream.frames_per_block * int(round(SAMPLE_RATE / card.fps))
        for i in range(0, len(job.audio), chunk):
            consume(stream.push_audio(job.audio[i:i + chunk]))
            now = time.perf_counter()
            if now - last_log > 30:
                log.info("%s: %d/%d frames (%.1f frames/s)", job.name, done, n, done / (now - t0))
                last_log = now
        consume(stream.flush())
    wall = time.perf_counter() - t0
    log.info("%s: %d frames in %.0f s (%.1f frames/s)", job.name, done, wall, done / max(wall, 1e-9))
    if job.truth_controls is not None:
        rec["open_truth_frames"] = truth_round_trip_open(stream, identity,
                                                         job.truth_controls, probe)
    if pic is not None:
        rec.update(pic.rec)
        rec["portrait_eye_edge"] = pic.portrait_eye_edge
        rec["kept"] = {k: (i, f) for k, (_, i, f) in pic.kept.items()}
        rec["portrait"] = pic.geo.portrait
        rec["open_portrait"] = float(probe.read_open(pic.geo.portrait[None])[0])
    return {"name": job.name, "frames": done, "wall_s": wall, "frames_per_s": done / max(wall, 1e-9),
            "step_ms": float(np.mean(stream.step_ms)) if stream.step_ms else float("nan"),
            "decode_ms_per_frame": float(np.sum(stream.decode_ms) / max(done, 1)),
            "frames_per_block": stream.frames_per_block,
            "decoder": "rig" if getattr(stream.decoder, "rigged", False) else "learned", **rec}


# -- summaries ------------------------------------------------------------------------------------------
def lipsync_summary(pairs: list[tuple[np.ndarray, np.ndarray]], max_lag: int) -> dict:
    out = best_lag(pairs, max_lag)
    truth = np.concatenate([t for t, _ in pairs])
    opened = np.concatenate([o for _, o in pairs])
    out.update(silence_stats(truth, opened))
    return out


def lipsync_targets(pooled: dict, ceiling: dict) -> dict:
    """Met / missed. An offset only counts where there is a real peak (r >= PEAK_R), and a closed mouth in
    silence only means something if the mouth also opens when speaking (at least half the ceiling's contrast)."""
    def num(v):
        return float("nan") if v is None else float(v)
    contrast = num(pooled["speaking_mean_open"]) - num(pooled["silent_mean_open"])
    ceiling_contrast = num(ceiling["speaking_mean_open"]) - num(ceiling["silent_mean_open"])
    return {"offset_within_1_frame": abs(pooled["best_lag"]) <= 1 and num(pooled["r_best"]) >= PEAK_R,
            "r_at_least_0.8": num(pooled["r_best"]) >= 0.8,
            "closed_in_silence": num(pooled["silent_mean_open"]) <= CLOSED_TARGET,
            "opens_when_speaking": contrast >= 0.5 * ceiling_contrast}


def segment_stats(rec: dict, truth: np.ndarray, fps: float, segment_seconds: float, max_lag: int) -> list[dict]:
    seg = max(1, int(round(segment_seconds * fps)))
    out = []
    for a in range(0, rec["frames"], seg):
        b = min(rec["frames"], a + seg)
        if b - a < seg // 2 and out:
            break
        o = rec["open"][a:b]
        out.append({"start_s": a / fps, "end_s": b / fps,
                    "mad": float(np.nanmean(rec["mad"][a:b])), "hist": float(np.nanmean(rec["hist"][a:b])),
                    "open_mean": float(o.mean()), "open_p10": float(np.percentile(o, 10)),
                    "open_p50": float(np.percentile(o, 50)), "open_p90": float(np.percentile(o, 90)),
                    "open_fraction_over_0.2": float((o > 0.2).mean()),
                    "r_lag0": pearson(truth[a:b], o),
                    "change": float(np.nanmean(rec["change"][a:b]))})
    return out


def drift(first: float, last: float) -> float:
    return float((last - first) / first) if first else float("nan")


def variant_summary(rec: dict, truth: np.ndarray, max_lag: int) -> dict:
    n = rec["frames"]
    k = max(1, n // 5)
    truth = truth[:n]
    silent = silent_mask(truth)
    change = rec["change"]
    fb = rec["frames_per_block"]
    idx = np.arange(n)
    boundary = (idx % fb == 0) & ~np.isnan(change)
    within = (idx % fb != 0) & ~np.isnan(change)
    early_mad, late_mad = float(np.nanmean(rec["mad"][:k])), float(np.nanmean(rec["mad"][-k:]))
    early_hist, late_hist = float(np.nanmean(rec["hist"][:k])), float(np.nanmean(rec["hist"][-k:]))
    ls = lipsync_summary([(truth, rec["open"])], max_lag)
    return {
        "frames": n, "frames_per_s": rec["frames_per_s"], "step_ms": rec["step_ms"],
        "mean_mad": float(np.nanmean(rec["mad"])), "early_mad": early_mad, "late_mad": late_mad,
        "drift_mad": drift(early_mad, late_mad), "early_hist": early_hist, "late_hist": late_hist,
        "drift_hist": drift(early_hist, late_hist),
        "jitter_silence": float(np.nanmean(change[silent])) if silent.any() else float("nan"),
        "jitter_outside_mouth": float(np.nanmean(rec["change_outside"])),
        "mean_change": float(np.nanmean(change)),
        "block_boundary_ratio": float(change[boundary].mean() / change[within].mean())
        if fb > 1 and within.any() and change[within].mean() > 0 else float("nan"),
        "best_lag": ls["best_lag"], "r_best": ls["r_best"], "r_lag0": ls["r_lag0"],
        "silent_mean_open": ls["silent_mean_open"], "speaking_mean_open": ls["speaking_mean_open"],
    }


def slice_record(rec: dict, n: int) -> dict:
    out = dict(rec)
    for k in ("mad", "hist", "open", "change", "change_outside"):
        out[k] = rec[k][:n]
    out["frames"] = min(n, rec["frames"])
    return out


def picture_avatars(first: int, count: int) -> list[int]:
    """Held-out avatar seeds covering round and square glasses and every hat, then plain ones."""
    from engine.toon.identity import random_identity
    wanted = [("glasses", "round"), ("glasses", "square"), ("hat", "beanie"), ("hat", "cap"), ("hat", "bow")]
    seeds: list[int] = []
    s = first
    while len(seeds) < count and s < first + 5000:
        ident = random_identity(s)
        hit = next((w for w in wanted if getattr(ident, w[0]) == w[1]), None)
        if hit is not None:
            wanted.remove(hit)
            seeds.append(s)
        elif not wanted:
            seeds.append(s)
        s += 1
    return seeds


def glitch_summary(results: dict, base: str) -> dict:
    """Do bad frames land on the same frame numbers for the same noise seed, whatever the audio?

    Correlation of the per-frame eye-region distance to the portrait between: the same seed on
    different audio (seed-locked glitches make this high), the same audio with another seed, and
    different audio with another seed (the floor: nothing shared). Frames near a blink in any of
    the three are left out: idle blinks follow a seeded clock by design.
    """
    from engine.tools.eval_picture import BLINK_MARGIN, _dilate, eye_states
    runs = [results[base], results["glitch:other_audio"], results["glitch:other_seed"]]
    n = min(len(r["eye_dist"]) for r in runs)
    ok = np.ones(n, bool)
    for r in runs:   # blinks come from a seeded clock on purpose: only frames away from any blink count
        ok &= np.isfinite(r["eye_dist"][:n])
        ok &= ~_dilate(eye_states(r["white_l"][:n], r["white_r"][:n])["blink"], BLINK_MARGIN + 2)
    a, b, c = (r["eye_dist"] for r in runs)
    a, b, c = a[:n][ok], b[:n][ok], c[:n][ok]
    top = lambda x: set(np.argsort(-x)[: max(1, len(x) // 100)].tolist())  # noqa: E731
    return {"frames": int(ok.sum()),
            "r_same_seed_other_audio": pearson(a, b), "r_same_audio_other_seed": pearson(a, c),
            "r_other_audio_other_seed": pearson(b, c),
            "worst_1pct_shared_same_seed": len(top(a) & top(b)) / max(1, len(top(a))),
            "worst_1pct_shared_other_seed": len(top(b) & top(c)) / max(1, len(top(b)))}


def picture_section(results: dict, avatars: list[int], truth: np.ndarray, roll_truth: np.ndarray, roll_avatar: int,
                    fps: float, sheets: str | None) -> dict:
    """Picture measures per avatar (and for the long rollout), their means, the targets; contact sheets."""
    from engine.tools.eval_picture import Geometry, contact_sheet, eye_closeups, picture_summary, picture_targets
    per: dict[str, dict] = {}
    rows, geos = [], {}
    runs = [(f"picture:{a}", a, truth) for a in avatars] + [("rollout", roll_avatar, roll_truth)]
    for name, avatar, tr in runs:
        rec = results[name]
        summary = picture_summary(rec, silent_mask(tr[: rec["frames"]]), fps, rec["portrait_eye_edge"])
        summary["avatar_seed"] = avatar
        summary["decode_ms_per_frame"] = rec["decode_ms_per_frame"]
        per[name] = summary
        label = f"{'rollout ' if name == 'rollout' else ''}{avatar}"
        kept = rec["kept"]
        tiles = [("portrait", rec["portrait"])]
        for key, title in (("silent_candidate", "frame 150"), ("widest_open", "widest open"),
                           ("worst_eyes", "worst eyes"), ("blink", "a blink")):
            if key in kept:
                tiles.append((f"{title} (#{kept[key][0]})", kept[key][1]))
        rows.append((label, tiles))
        geos[label] = Geometry.of(avatar, rec["portrait"].shape[0])
    avatars_only = [per[f"picture:{a}"] for a in avatars]
    keys = ("psnr_silence", "eye_edge_ratio_silence", "smear_ratio", "jitter_outside_mouth_silence",
            "blinks_per_min_silence", "decode_ms_per_frame")
    mean = {k: float(np.nanmean([p[k] for p in avatars_only])) for k in keys} if avatars_only else {}
    if avatars_only:
        mean["lost_eye_frames"] = int(sum(p["lost_eye_frames"] for p in avatars_only))
    worst = {
        "psnr_silence": min(p["psnr_silence"] for p in per.values()),
        "eye_edge_ratio_silence": min(p["eye_edge_ratio_silence"] for p in per.values()),
        "smear_ratio": max(p["smear_ratio"] for p in per.values()),
        "smear_ratio_vs_all_closed": max(p["smear_ratio_vs_all_closed"] for p in per.values()),
        "eye_sharpness_wide_vs_closed": min(p["eye_sharpness_wide_vs_closed"] for p in per.values()),
        "jitter_outside_mouth_silence": max(p["jitter_outside_mouth_silence"] for p in per.values()),
        "blinks_per_min_silence": per["rollout"]["blinks_per_min_silence"],
        "lost_eye_frames": sum(p["lost_eye_frames"] for p in per.values()),
    }
    truth_summary = {}     # per avatar: the held-out clips' own faces (head sway, syllable nods, blinks) drawn by the rig
    for a in avatars:
        rec = results.get(f"truth:{a}")
        if rec is not None:
            truth_summary[f"truth:{a}"] = {**picture_summary(rec, silent_mask(truth[: rec["frames"]]), fps,
                                                             rec["portrait_eye_edge"]),
                                           "avatar_seed": a, "decode_ms_per_frame": float("nan")}
    if sheets:
        contact_sheet(rows, f"{sheets}_frames.png")
        eye_closeups(rows, geos, f"{sheets}_eyes.png")
    return {"avatars": per, "ground_truth": truth_summary, "mean_over_avatars": mean, "worst": worst,
            "targets_on_worst": picture_targets(worst),
            "sheets": [f"{sheets}_frames.png", f"{sheets}_eyes.png"] if sheets else []}


# -- the run --------------------------------------------------------------------------------------------
def _init_worker(level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(processName)s %(name)s: %(message)s")


def _run_jobs(jobs: list[StreamJob], workers: int) -> dict[str, dict]:
    if workers <= 1:
        return {j.name: run_stream(j) for j in jobs}
    import multiprocessing
    from engine.tools import eval as this   # by module name: under `python -m` this file is __main__ in the parent
    results: dict[str, dict] = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(logging.getLogger().getEffectiveLevel(),)) as pool:
        futures = {pool.submit(this.run_stream, j): j.name for j in jobs}
        for fut, name in futures.items():
            results[name] = fut.result()
    return results


def evaluate(cfg: EvalConfig) -> dict:
    """Every part of the evaluation; returns the JSON-ready result."""
    from engine.card import resolve_card
    from engine.checkpoints import CheckpointError
    from engine.clips.clip import make_clip
    from engine.tools.probe import MouthProbe, probe_metrics

    t_start = time.time()
    card = resolve_card(cfg.model)
    MouthProbe.load(cfg.probe)   # fail early, with the message, if the probe is missing
    ode = Path(cfg.ode_student) if cfg.ode_student else (DEFAULT_ODE_STUDENT if DEFAULT_ODE_STUDENT.is_file() else None)
    if cfg.ode_student and not ode.is_file():
        raise CheckpointError(f"--ode-student {ode} does not exist")
    fps = card.fps
    root = str(card.root)
    log.info("model %s (%s), %dx%d @ %g fps", card.name, root, card.width, card.height, fps)

    lip_clips = [make_clip(cfg.first_seed + i, fps, cfg.lipsync_seconds) for i in range(cfg.lipsync_clips)]
    long_seconds = max(cfg.rollout_seconds, cfg.ablation_seconds)
    program = heldout_program(cfg.first_seed + 100, long_seconds, cfg.clip_seconds, cfg.gap_seconds, fps, cfg.seed)
    avatar = program.seeds[0]
    n_roll = int(round(cfg.rollout_seconds * fps))
    n_abl = int(round(cfg.ablation_seconds * fps))
    spf = int(round(SAMPLE_RATE / fps))
    log.info("held-out audio ready: %d lip-sync clips, %.0f s program from %d clips (%.1f s)", len(lip_clips),
             long_seconds, len(program.seeds), time.time() - t_start)

    common = dict(card=root, probe=cfg.probe, seed=cfg.seed, threads=cfg.threads, rig=cfg.rig)
    jobs = [StreamJob("rollout", audio=program.audio[: n_roll * spf], avatar_seed=avatar, picture=True, **common)]
    pic_avatars = picture_avatars(cfg.first_seed + 1000, cfg.picture_avatars)
    pic_program = heldout_program(cfg.first_seed + 200, cfg.picture_seconds, cfg.clip_seconds, cfg.gap_seconds, fps,
                                  cfg.seed + 1)
    n_pic = int(round(cfg.picture_seconds * fps))
    for a in pic_avatars:
        jobs.append(StreamJob(f"picture:{a}", audio=pic_program.audio[: n_pic * spf], avatar_seed=a, picture=True,
                              **common))
    for a in pic_avatars:   # the same speech drawn from the clips' own faces: what each measure reads on the ground truth
        jobs.append(StreamJob(f"truth:{a}", audio=pic_program.audio[: n_pic * spf], avatar_seed=a, picture=True,
                              drawn=pic_program.controls[:n_pic], **common))
    creators = list(range(cfg.first_seed + 2000, cfg.first_seed + 2000 + cfg.creator_avatars))
    for c in creators:
        jobs.append(StreamJob(f"creator:{c}", audio=pic_program.audio[: n_pic * spf], avatar_seed=c, picture=True,
                              creator=True, **common))
    # seed-locked glitches: the same avatar on other audio with the same noise seed, and with another seed
    other = heldout_program(cfg.first_seed + 300, cfg.picture_seconds, cfg.clip_seconds, cfg.gap_seconds, fps,
                            cfg.seed + 2)
    glitch_avatar = pic_avatars[0] if pic_avatars else avatar
    common_glitch = {**common, "seed": cfg.seed + 1}
    jobs.append(StreamJob("glitch:other_audio", audio=other.audio[: n_pic * spf], avatar_seed=glitch_avatar,
                          picture=True, **common))
    jobs.append(StreamJob("glitch:other_seed", audio=pic_program.audio[: n_pic * spf], avatar_seed=glitch_avatar,
                          picture=True, **common_glitch))
    skipped: dict[str, str] = {}
    reuse_full = "full" in cfg.ablations and n_roll >= n_abl
    for name in cfg.ablations:
        if name not in VARIANTS:
            raise ValueError(f"unknown ablation {name!r}; known: {list(VARIANTS)}")
        overrides, baseline, use_ode = VARIANTS[name]
        if name == "full" and reuse_full:
            continue   # identical to the first ablation_seconds of the rollout (same audio, avatar, seed)
        if use_ode and ode is None:
            skipped[name] = f"no ODE student weights (looked for {portable(DEFAULT_ODE_STUDENT)}); pass --ode-student"
            continue
        jobs.append(StreamJob(f"ablation:{name}", audio=program.audio[: n_abl * spf], avatar_seed=avatar,
                              overrides=dict(overrides), baseline=baseline, weights=str(ode) if use_ode else None,
                              **common))
    for clip in lip_clips:
        jobs.append(StreamJob(f"lipsync:{clip.seed}", audio=clip.audio, avatar_seed=clip.seed,
                              truth_controls=clip.controls, **common))

    results = _run_jobs(jobs, cfg.workers)

    # lip sync on held-out clips, each with its own identity
    pairs, ceiling_pairs, per_clip = [], [], []
    for clip in lip_clips:
        rec = results[f"lipsync:{clip.seed}"]
        truth = clip.controls[: rec["frames"], 0]
        pairs.append((truth, rec["open"][: len(truth)]))
        ceiling_pairs.append((clip.controls[:, 0], rec["open_truth_frames"]))
        one = lipsync_summary([pairs[-1]], cfg.max_lag)
        per_clip.append({"seed": clip.seed, "frames": rec["frames"], "best_lag": one["best_lag"],
                         "r_best": one["r_best"], "r_lag0": one["r_lag0"],
                         "silent_mean_open": one["silent_mean_open"], "speaking_mean_open": one["speaking_mean_open"],
                         "ceiling_r_lag0": pearson(*ceiling_pairs[-1])})
    pooled = lipsync_summary(pairs, cfg.max_lag)
    ceiling = lipsync_summary(ceiling_pairs, cfg.max_lag)
    lipsync = {
        "clips": per_clip, "pooled": pooled,
        "ceiling": {"what": "the probe on the ground-truth frames after the decoder round trip (a perfect model)",
                    "r_lag0": ceiling["r_lag0"], "best_lag": ceiling["best_lag"],
                    "silent_mean_open": ceiling["silent_mean_open"],
                    "speaking_mean_open": ceiling["speaking_mean_open"]},
        "targets": lipsync_targets(pooled, ceiling),
        "trace": {"seed": lip_clips[0].seed, "truth": pairs[0][0].tolist(), "probe": pairs[0][1].tolist(),
                  "probe_on_truth_frames": ceiling_pairs[0][1].tolist()},
    }

    # stability of the long rollout
    roll = results["rollout"]
    segments = segment_stats(roll, program.truth, fps, cfg.segment_seconds, cfg.max_lag)
    stability = {
        "seconds": roll["frames"] / fps, "frames": roll["frames"], "segment_seconds": cfg.segment_seconds,
        "avatar_seed": avatar, "audio_seeds": program.seeds, "frames_per_s": roll["frames_per_s"],
        "step_ms": roll["step_ms"], "decode_ms_per_frame": roll["decode_ms_per_frame"], "decoded_every_frame": True,
        "segments": segments,
        "drift_mad": drift(segments[0]["mad"], segments[-1]["mad"]),
        "drift_hist": drift(segments[0]["hist"], segments[-1]["hist"]),
        "lipsync": lipsync_summary([(program.truth[: roll["frames"]], roll["open"])], cfg.max_lag),
    }
    stability["target_drift_within_2pct"] = abs(stability["drift_mad"]) <= 0.02

    picture = picture_section(results, pic_avatars, pic_program.truth, program.truth, avatar, fps, cfg.sheets)
    from engine.tools.eval_creator import creator_section
    picture["creators"] = creator_section(results, creators, pic_program.truth, fps, silent_mask)
    picture["seed_locked_glitches"] = glitch_summary(results, f"picture:{glitch_avatar}" if pic_avatars else "rollout")

    # ablations on the same audio
    variants: dict[str, dict] = {}
    for name in cfg.ablations:
        if name in skipped:
            variants[name] = {"skipped": skipped[name]}
            continue
        rec = slice_record(roll, n_abl) if (name == "full" and reuse_full) else results[f"ablation:{name}"]
        variants[name] = variant_summary(rec, program.truth, cfg.max_lag)
    ordering = {}
    full = variants.get("full")
    if full and "skipped" not in full:
        for name in ANCHOR_VARIANTS + ("self_forcing_1step", "ode_student_no_dmd"):
            v = variants.get(name)
            if not v or "skipped" in v:
                continue
            ordering[name] = {
                "drifts_more": abs(v["drift_mad"]) > abs(full["drift_mad"]) + DRIFT_MARGIN,
                "further_from_reference": v["mean_mad"] > full["mean_mad"] * (1 + REL_MARGIN),
                "jitters_more": v["jitter_silence"] > full["jitter_silence"] * (1 + REL_MARGIN),
                "worse_lipsync": v["r_best"] < full["r_best"] - R_MARGIN}
            ordering[name]["worse"] = ordering[name]["drifts_more"] or ordering[name]["jitters_more"]
    held = [ordering[n]["worse"] for n in ANCHOR_VARIANTS if n in ordering]
    ablations = {"seconds": n_abl / fps, "avatar_seed": avatar, "variants": variants, "ordering": ordering,
                 "paper_ordering_holds": bool(held) and all(held)}

    return clean({
        "model": {"name": card.name, "folder": portable(card.root), "fps": fps, "size": [card.width, card.height],
                  "decoder": roll.get("decoder", "learned"),
                  "stream": dataclasses.asdict(card.stream)},
        "settings": {**dataclasses.asdict(cfg), "ode_student": str(ode) if ode else None,
                     "lag_convention": "lag k > 0: generated frame t+k matches ground truth t (video late by k frames)",
                     "silence": f"ground truth < {SILENT_LEVEL} for >= {SILENT_RUN} frames, {SILENT_TRIM} trimmed per end",
                     "reference": "the avatar portrait after the autoencoder round trip (as the decoder draws it)"},
        "probe": probe_metrics(cfg.probe),
        "lipsync": lipsync, "stability": stability, "ablations": ablations, "picture": picture,
        "timing": {"wall_s": time.time() - t_start, "jobs": {k: v["wall_s"] for k, v in results.items()}},
    })


def plot(result: dict, path: str | Path) -> None:
    """Lip-sync trace and lag curve, stability per segment, and the ablation bars in one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from engine.files import atomic_write

    fig = plt.figure(figsize=(15, 8.5), constrained_layout=True)
    outer = fig.add_gridspec(2, 1)
    top, bottom = outer[0].subgridspec(1, 3), outer[1].subgridspec(1, 4)
    ls = result["lipsync"]
    fps = result["model"]["fps"]
    ax = fig.add_subplot(top[0, :2])
    truth, probe = np.array(ls["trace"]["truth"], float), np.array(ls["trace"]["probe"], float)
    t = np.arange(len(truth)) / fps
    ax.plot(t, truth, label="ground truth mouth_open", color="black", lw=1.5)
    ax.plot(t, np.array(ls["trace"]["probe_on_truth_frames"], float), label="probe on ground-truth frames (ceiling)",
            color="tab:blue", lw=0.9, ls="--")
    ax.plot(t, probe, label="probe on generated frames", color="tab:red", lw=1.2)
    r = ls["pooled"]
    ax.set_title(f"Lip sync, held-out clip {ls['trace']['seed']} (pooled over {len(ls['clips'])} clips: "
                 f"best lag {r['best_lag']} frames, r={_fmt(r['r_best'])}, r@0={_fmt(r['r_lag0'])})")
    ax.set_xlabel("seconds"), ax.set_ylabel("mouth open"), ax.legend(loc="best", fontsize=8)
    ax = fig.add_subplot(top[0, 2])
    ax.plot(r["lags"], [np.nan if v is None else v for v in r["r_by_lag"]], marker="o")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_title("correlation vs lag (> 0: video late)"), ax.set_xlabel("lag (frames)"), ax.set_ylabel("Pearson r")

    st = result["stability"]
    segs = st["segments"]
    unit, div = ("minute", 60.0) if st["seconds"] >= 120 else ("second", 1.0)
    mid = [(s["start_s"] + s["end_s"]) / 2 / div for s in segs]
    ax = fig.add_subplot(bottom[0, 0])
    ax.plot(mid, [s["mad"] for s in segs], marker="o", color="tab:blue", label="mean |frame - reference|")
    ax.set_xlabel(unit), ax.set_ylabel("mean abs pixel difference", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(mid, [s["hist"] for s in segs], marker="s", color="tab:orange", label="colour histogram TV")
    ax2.plot(mid, [s["open_mean"] for s in segs], marker="^", color="tab:green", label="probe openness (mean)")
    ax2.fill_between(mid, [s["open_p10"] for s in segs], [s["open_p90"] for s in segs], color="tab:green",
                     alpha=0.15, label="openness p10-p90")
    ax2.set_ylabel("histogram distance / openness")
    length = f"{st['seconds'] / 60:.1f}-min" if st["seconds"] >= 120 else f"{st['seconds']:.0f}-s"
    ax.set_title(f"{length} rollout: drift {100 * (st['drift_mad'] or 0):+.1f}% (pixels), "
                 f"{100 * (st['drift_hist'] or 0):+.1f}% (hist)", fontsize=10)
    ax.legend(loc="upper left", fontsize=8), ax2.legend(loc="lower right", fontsize=8)

    variants = {k: v for k, v in result["ablations"]["variants"].items() if "skipped" not in v}
    names = list(variants)
    colours = ["tab:green" if n == "full" else "tab:gray" for n in names]
    for col, (key, title, scale) in enumerate([("drift_mad", "drift, late vs early (%)", 100),
                                                ("jitter_silence", "jitter in silence (px change/frame)", 1),
                                                ("r_best", "lip-sync r (best lag)", 1)]):
        ax = fig.add_subplot(bottom[0, 1 + col])
        vals = [scale * (variants[n][key] if variants[n][key] is not None else np.nan) for n in names]
        bars = ax.barh(names, vals, color=colours)
        ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
        ax.margins(x=0.25)
        ax.invert_yaxis()
        ax.set_title(f"{title}, {result['ablations']['seconds']:.0f} s", fontsize=10)
        if col:
            ax.set_yticklabels([])
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=90), mode=0o644)
    plt.close(fig)


def lipsync_row(label: str, m: dict, r_best: bool = True) -> str:
    """One row of the lip-sync table (the ceiling has no best-lag r of its own)."""
    best = f" {_fmt(m['r_best'])} " if r_best else " "
    return (f"| {label} | {m['best_lag']} |{best}| {_fmt(m['r_lag0'])} | "
            f"{_fmt(m['silent_mean_open'])} | {_fmt(m['speaking_mean_open'])} |")


def report(result: dict) -> str:
    """The markdown page: method, every headline number, and a mechanical reading of the targets."""
    ls, st, ab, pr = result["lipsync"], result["stability"], result["ablations"], result["probe"]
    po, ce = ls["pooled"], ls["ceiling"]
    t = ls["targets"]
    s = result["settings"]
    mo = (pr.get("held_out_round_trip") or {}).get("mouth_open", {})
    mc = (pr.get("held_out_crisp") or {}).get("mouth_open", {})

    def yes(ok):
        return "met" if ok else "MISSED"

    lines = [
        f"# Evaluation of the `{result['model']['name']}` model",
        "",
        "Written by `python -m engine.tools.eval` (numbers: `docs/eval_toon.json`, plot: `docs/eval_toon.png`).",
        f"Wall time {result['timing']['wall_s'] / 60:.1f} min; {s['workers']} worker processes x {s['threads']} "
        "torch thread(s). Audio is pushed one block at a time through `AvatarStream`; every frame is decoded.",
        "Frames drawn by: " + ("the avatar's cartoon rig, posed by controls read from each generated latent "
                               "(`engine/codecs/rigdecoder.py`)" if result["model"].get("decoder") == "rig" else
                               "the learned reference-aware decoder (`engine/codecs/refdecoder.py`)") + ".",
        "",
        "## How it is measured",
        f"- Held-out clips: seeds >= {s['first_seed']} (training clips use seeds below it): unseen voices, texts "
        "and identities.",
        "- Mouth probe (`engine/tools/probe.py`): a 25k-parameter CNN on a fixed mouth crop, trained on renderer frames "
        "(random identities, poses, controls) after the autoencoder round trip"
        + (" and crisp at 512 px (as a rig draws them)" if "held_out_crisp" in pr else "") + ". Held-out (unseen "
        f"identities, round-tripped): mouth_open R^2 = {_fmt(mo.get('r2'))}, r = {_fmt(mo.get('pearson'))}, "
        f"MAE = {_fmt(mo.get('mae'))}, shut mouths read {_fmt((pr.get('held_out_round_trip') or {}).get('closed_mean_open'))}"
        + ("; crisp: R^2 = {}, r = {}, MAE = {}, shut mouths read {}".format(
            *(_fmt(v) for v in (mc.get("r2"), mc.get("pearson"), mc.get("mae"),
                                pr["held_out_crisp"].get("closed_mean_open")))) if "held_out_crisp" in pr else "")
        + ".",
        f"- Lag convention: {s['lag_convention']}. Silence: {s['silence']}.",
        f"- Reference for drift: {s['reference']}. Distance = mean absolute pixel difference (0..255) and a "
        "16-bin-per-channel colour-histogram total-variation distance (0..1).",
        "",
        f"## Lip sync ({len(ls['clips'])} held-out clips x {s['lipsync_seconds']:g} s, each with its own identity)",
        "| | best lag (frames) | r at best lag | r at lag 0 | openness in silence | openness speaking |",
        "|---|---|---|---|---|---|",
        lipsync_row("model (pooled)", po),
        lipsync_row("ceiling: probe on ground-truth frames", ce, r_best=False),
        *(lipsync_row(f"clip {c['seed']}", c) for c in ls["clips"]),
    ]
    lines += [
        "",
        f"Targets: |offset| <= 1 frame (at a real peak, r >= {PEAK_R}): **{yes(t['offset_within_1_frame'])}**; "
        f"r >= 0.8: **{yes(t['r_at_least_0.8'])}**; mouth closed in silence (mean openness <= {CLOSED_TARGET}): "
        f"**{yes(t['closed_in_silence'])}**; mouth opens when speaking (speaking - silent openness >= half the "
        f"ceiling's): **{yes(t['opens_when_speaking'])}**.",
        "",
        f"## Stability: {st['seconds'] / 60:.1f}-minute rollout ({st['frames']} frames, avatar {st['avatar_seed']}, "
        f"{len(st['audio_seeds'])} held-out clips with silences between)",
        f"Stream speed {st['frames_per_s']:.1f} frames/s in this run (step {st['step_ms']:.0f} ms per block, decode "
        f"{st['decode_ms_per_frame']:.1f} ms per frame).",
        "",
        "| segment | pixels to ref | hist to ref | openness mean | p10 | p90 | r (lag 0) |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in st["segments"]:
        lines.append(f"| {g['start_s']:.0f}-{g['end_s']:.0f} s | {_fmt(g['mad'])} | {_fmt(g['hist'], 4)} | "
                     f"{_fmt(g['open_mean'])} | {_fmt(g['open_p10'])} | {_fmt(g['open_p90'])} | {_fmt(g['r_lag0'])} |")
    lines += [
        "",
        f"Drift (last segment vs first): pixels {100 * (st['drift_mad'] or 0):+.2f} %, histogram "
        f"{100 * (st['drift_hist'] or 0):+.2f} %. Target within 2 %: **{yes(st['target_drift_within_2pct'])}**.",
        "",
        *picture_report(result.get("picture")),
        f"## Ablations ({ab['seconds']:g} s each, same audio and avatar)",
        "| variant | drift (pixels) | mean pixels to ref | jitter in silence | jitter outside mouth | "
        "block-boundary ratio | lip-sync r (lag) | silence openness |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in ab["variants"].items():
        if "skipped" in v:
            lines.append(f"| {name} | skipped: {v['skipped']} | | | | | | |")
            continue
        lines.append(f"| {name} | {100 * (v['drift_mad'] or 0):+.2f} % | {_fmt(v['mean_mad'])} | "
                     f"{_fmt(v['jitter_silence'])} | {_fmt(v['jitter_outside_mouth'])} | "
                     f"{_fmt(v['block_boundary_ratio'])} | {_fmt(v['r_best'])} ({v['best_lag']}) | "
                     f"{_fmt(v['silent_mean_open'])} |")
    lines += ["", f"Against the full model (worse only beyond a margin: |drift| + {100 * DRIFT_MARGIN:g} points, "
              f"distance and jitter + {100 * REL_MARGIN:g} %, r - {R_MARGIN}; jitter = mean frame-to-frame pixel "
              "change inside silent stretches):"]
    for name, o in ab["ordering"].items():
        worse = [k.replace("_", " ") for k in ("drifts_more", "jitters_more", "further_from_reference", "worse_lipsync")
                 if o[k]]
        lines.append(f"- {name}: {', '.join(worse) if worse else 'no worse on any measure'}.")
    lines += ["", f"Paper's ordering (each removed anchor drifts or jitters more than the full model): "
              f"**{'holds' if ab['paper_ordering_holds'] else 'does NOT hold'}** in this run.", ""]
    return "\n".join(lines)


def picture_report(pic: dict | None) -> list[str]:
    """The picture section of the markdown page (absent in results written before it existed)."""
    if not pic:
        return []
    from engine.tools.eval_picture import __doc__ as how
    yes = lambda ok: "met" if ok else "MISSED"  # noqa: E731
    t = pic["targets_on_worst"]
    w = pic["worst"]
    lines = ["## Picture: the avatar stays itself", "",
             " ".join(how.split("\n\n", 1)[1].split()), "",
             "| run | avatar | PSNR silent (dB) | eye edge energy | smear ratio (vs all closed) | eye sharpness wide/closed | "
             "jitter outside mouth (silence) | blinks/min (silence) | lost-eye frames | decode ms/frame |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in pic["avatars"].items():
        lines.append(f"| {name} | {p['avatar_seed']} | {_fmt(p['psnr_silence'], 1)} | "
                     f"{_fmt(p['eye_edge_ratio_silence'], 2)} | {_fmt(p['smear_ratio'], 2)} "
                     f"({_fmt(p.get('smear_ratio_vs_all_closed'), 2)}) | "
                     f"{_fmt(p.get('eye_sharpness_wide_vs_closed'), 2)} | {_fmt(p['jitter_outside_mouth_silence'], 2)} | {_fmt(p['blinks_per_min_silence'], 1)} | "
                     f"{p['lost_eye_frames']} | {_fmt(p['decode_ms_per_frame'], 1)} |")
    gts = pic.get("ground_truth") or {}
    for gt in gts.values():
        lines.append(f"| ground truth: the clips' own faces | {gt['avatar_seed']} | {_fmt(gt['psnr_silence'], 1)} | "
                     f"{_fmt(gt['eye_edge_ratio_silence'], 2)} | {_fmt(gt['smear_ratio'], 2)} "
                     f"({_fmt(gt.get('smear_ratio_vs_all_closed'), 2)}) | "
                     f"{_fmt(gt.get('eye_sharpness_wide_vs_closed'), 2)} | {_fmt(gt['jitter_outside_mouth_silence'], 2)} | "
                     f"{_fmt(gt['blinks_per_min_silence'], 1)} | {gt['lost_eye_frames']} | |")
    if gts:
        lines += ["", "The ground-truth rows are the same speech drawn by each avatar's rig from the held-out clips' "
                  "own controls (their head sway, syllable nods and blinks): what each measure reads when nothing is "
                  "generated. A smear ratio there is head motion the training clips have, not a smear."]
    lines += ["", f"Targets on the worst run: PSNR >= 30 dB ({_fmt(w['psnr_silence'], 1)}): "
              f"**{yes(t['psnr_silence_ge_30'])}**; eye edge energy >= 80 % ({_fmt(w['eye_edge_ratio_silence'], 2)}): "
              f"**{yes(t['eye_edge_ratio_ge_0.8'])}**; smear ratio <= 1.5 ({_fmt(w['smear_ratio'], 2)}; "
              f"{_fmt(w.get('smear_ratio_vs_all_closed'), 2)} against every closed frame): "
              f"**{yes(t['smear_ratio_le_1.5'])}**; eye sharpness on the widest-open frames >= 90 % of the "
              f"closed-mouth frames' ({_fmt(w.get('eye_sharpness_wide_vs_closed'), 2)}): "
              f"**{yes(t.get('eye_sharpness_ge_0.9', False))}**; no lost eye ({w['lost_eye_frames']} frames): "
              f"**{yes(t['no_lost_eye'])}**; jitter <= 0.5 ({_fmt(w['jitter_outside_mouth_silence'], 2)}): "
              f"**{yes(t['jitter_le_0.5'])}**; 8-20 blinks/min in silence on the rollout "
              f"({_fmt(w['blinks_per_min_silence'], 1)}): **{yes(t['blinks_8_to_20_per_min'])}**.", ""]
    g = pic.get("seed_locked_glitches")
    if g:
        lines += [f"Seed-locked glitches ({g['frames']} frames): correlation of the per-frame eye-region distance, "
                  f"same noise seed on other audio {_fmt(g['r_same_seed_other_audio'], 2)} (shared worst 1 % of "
                  f"frames: {g['worst_1pct_shared_same_seed']:.0%}); other seed on other audio (nothing shared) "
                  f"{_fmt(g['r_other_audio_other_seed'], 2)} ({g['worst_1pct_shared_other_seed']:.0%}); same audio, "
                  f"other seed {_fmt(g['r_same_audio_other_seed'], 2)}.", ""]
    from engine.tools.eval_creator import creator_report
    lines += creator_report(pic.get("creators", {}))
    for sheet in pic.get("sheets", []):
        lines.append(f"![]({Path(sheet).name})")
    return lines + [""]


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate a toon model: lip sync, long-rollout stability, ablations.")
    p.add_argument("--model", default="toon", help="model folder or shipped name (default: toon)")
    p.add_argument("--ode-student", help="ODE-backfill student weights for the 'without DMD' ablation")
    p.add_argument("--probe", help="mouth probe weights (default: the shipped one)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in well under a minute")
    p.add_argument("--rollout-seconds", type=float)
    p.add_argument("--ablation-seconds", type=float)
    p.add_argument("--lipsync-clips", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--ablations", help="comma-separated subset of " + ",".join(VARIANTS))
    p.add_argument("--out", default="docs/eval_toon.json")
    p.add_argument("--plot", default="docs/eval_toon.png", help="PNG path ('' for none)")
    p.add_argument("--report", default="docs/eval_toon.md", help="markdown summary path ('' for none)")
    p.add_argument("--sheets", default="docs/eval_toon", help="contact sheets prefix ('' for none): _frames.png, _eyes.png")
    p.add_argument("--picture-avatars", type=int)
    p.add_argument("--picture-seconds", type=float)
    p.add_argument("--creator-avatars", type=int, help="creator-made avatar mixes to stream (default 2)")
    p.add_argument("--no-rig", action="store_true",
                   help="draw every avatar with the learned reference decoder, not the cartoon rig")
    p.add_argument("--rerender", action="store_true",
                   help="run nothing: re-derive the targets and rewrite the plot and report from the JSON at --out")
    p.add_argument("--only", choices=("all", "voices", "main"), default="all",
                   help="voices: only the voices and sounds section (engine.tools.eval_voices); main: all but that; "
                        "all: everything")
    p.add_argument("--vad", choices=("off", "on", "both"), default="both",
                   help="voices section: with the voice-activity gate off, on, or both (default)")
    p.add_argument("--voices-out", help="voices section JSON (default: beside --out, <name>_voices.json)")
    p.add_argument("--voices-report", help="voices section markdown (default: beside --report, <name>_voices.md)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(name)s: %(message)s")
    if args.only == "voices":
        return _voices(args)
    changes = {k: v for k, v in {"model": args.model, "ode_student": args.ode_student, "probe": args.probe,
                                 "rollout_seconds": args.rollout_seconds, "ablation_seconds": args.ablation_seconds,
                                 "lipsync_clips": args.lipsync_clips, "workers": args.workers,
                                 "threads": args.threads, "picture_avatars": args.picture_avatars,
                                 "picture_seconds": args.picture_seconds, "creator_avatars": args.creator_avatars,
                                 "sheets": args.sheets or None, "rig": False if args.no_rig else None}.items()
               if v is not None}
    if args.ablations:
        changes["ablations"] = tuple(a.strip() for a in args.ablations.split(",") if a.strip())
    cfg = EvalConfig.quick(**changes) if args.quick else EvalConfig(**changes)
    if not args.quick and "segment_seconds" not in changes and cfg.rollout_seconds < 10 * cfg.segment_seconds:
        cfg.segment_seconds = cfg.rollout_seconds / 10   # always ten segments
    if args.rerender:
        result = json.loads(Path(args.out).read_text())
        ls = result["lipsync"]
        ls["targets"] = clean(lipsync_targets(ls["pooled"], ls["ceiling"]))
    else:
        result = evaluate(cfg)
    write_json(result, args.out)
    log.info("wrote %s", args.out)
    if args.plot:
        plot(result, args.plot)
        log.info("wrote %s", args.plot)
    if args.report:
        from engine.files import atomic_write_text
        atomic_write_text(Path(args.report), report(result), mode=0o644)
        log.info("wrote %s", args.report)
    if not args.rerender and args.only == "all":
        _voices(args)
    ls, st = result["lipsync"]["pooled"], result["stability"]
    log.info("lip sync: lag %s frames, r %.3f (lag 0: %.3f), silent open %.3f vs speaking %.3f; drift %.2f%%",
             ls["best_lag"], ls["r_best"] or float("nan"), ls["r_lag0"] or float("nan"),
             ls["silent_mean_open"] or float("nan"), ls["speaking_mean_open"] or float("nan"),
             100 * (st["drift_mad"] or float("nan")))


def _voices(args: argparse.Namespace) -> None:
    """The voices and sounds section (engine.tools.eval_voices), sized by --quick, written beside the main files."""
    from engine.tools.eval_voices import VoicesConfig, evaluate as evaluate_voices, write
    changes = {k: v for k, v in {"model": args.model, "probe": args.probe, "threads": args.threads,
                                 "vad": args.vad}.items() if v is not None}
    cfg = VoicesConfig.quick(**changes) if args.quick else VoicesConfig(**changes)
    out = args.voices_out or str(Path(args.out).with_name(Path(args.out).stem + "_voices.json"))
    md = args.voices_report if args.voices_report is not None else (
        str(Path(args.report).with_name(Path(args.report).stem + "_voices.md")) if args.report else "")
    write(evaluate_voices(cfg), out, md or None)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()

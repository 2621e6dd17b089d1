"""Every stage in order, then the shipped model card: data -> teacher -> ODE backfill -> DMD -> card.

    python -m engine.train.pipeline --config engine/train/configs/toon.yaml --out runs/toon --card engine/models/toon
    torchrun --nproc_per_node 2 -m engine.train.pipeline ...      (same, on two ranks)

Why in-process: under torchrun all ranks walk the stages together in one process group. A stage
whose final weights exist is skipped, and `--resume` continues a stage from its checkpoint, so
an interrupted pipeline picks up where it stopped. The card folder holds model.yaml, the student
weights and the autoencoder it decodes with (a card is self-contained), and must stay <= 40 MB.
"""
from __future__ import annotations

import argparse
import inspect
import json
import logging
import shutil
import time
from pathlib import Path

from engine.card import AudioSpec, BlinkTiming, DecoderSpec, ModelCard, save_card
from engine.codecs.logmel import LogMelEncoder
from engine.files import atomic_write, atomic_write_text
from engine.train import data as data_stage
from engine.train import dmd, ode_backfill, teacher
from engine.train.dist import Dist, setup, teardown
from engine.train.recipe import Recipe, load_recipe

log = logging.getLogger(__name__)

MAX_CARD_BYTES = 40 * 1024 * 1024
AUTOENCODER = "autoencoder.safetensors"
REFERENCE_DECODER = "refdecoder.safetensors"
RIG = "rig.safetensors"
IDLE_BLINKS = BlinkTiming(min_s=2.5, max_s=6.0)   # the stream's idle blinks (engine.codecs.decoders.IdleBlinks)


def logmel_settings(overrides: dict) -> dict:
    """Every LogMelEncoder setting (defaults filled in) except the rates the card states elsewhere."""
    params = inspect.signature(LogMelEncoder.__init__).parameters
    out = {name: p.default for name, p in params.items() if name not in ("self", "sample_rate", "fps")}
    unknown = sorted(set(overrides) - set(out))
    if unknown:
        raise ValueError(f"unknown log-mel settings {unknown}; allowed: {sorted(out)}")
    out.update(overrides)
    return out


def _copy_pair(src: Path, folder: Path, name: str) -> None:
    """Weights (.safetensors) and their config (.yaml) into the card under `name`."""
    for part in (src, src.with_suffix(".yaml")):
        target = folder / (Path(name).stem + part.suffix)
        if part.resolve() != target.resolve():
            atomic_write(target, lambda tmp, part=part: shutil.copyfile(part, tmp), mode=0o644)


def write_card(recipe: Recipe, student_weights: Path, folder: str | Path) -> Path:
    """The model folder the app loads: model.yaml + model.safetensors + the autoencoder's two files
    (+ the reference decoder's two, which then sets the card's output size; + the rig's reader)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _copy_pair(data_stage.resolve(recipe.data.autoencoder).with_suffix(".safetensors"), folder, AUTOENCODER)
    decoder = DecoderSpec(kind="toon", weights=AUTOENCODER)
    size = recipe.data.image_size
    if recipe.data.reference_decoder:
        from engine.codecs.refdecoder import RefDecoder
        src = data_stage.resolve(recipe.data.reference_decoder).with_suffix(".safetensors")
        size = RefDecoder.load(src).cfg.image_size
        _copy_pair(src, folder, REFERENCE_DECODER)
        decoder.reference, decoder.idle_blinks = REFERENCE_DECODER, IDLE_BLINKS
    if recipe.data.rig:
        _copy_pair(data_stage.resolve(recipe.data.rig).with_suffix(".safetensors"), folder, RIG)
        decoder.rig, decoder.idle_blinks = RIG, IDLE_BLINKS
    card = ModelCard(
        name=recipe.name, model=recipe.model, stream=recipe.stream, fps=recipe.data.fps,
        width=size, height=size, video_frames_per_latent=1,
        audio=AudioSpec(encoder="logmel", settings=logmel_settings(recipe.data.logmel)),
        decoder=decoder,
        description="Toon avatar student distilled by engine.train.pipeline (teacher -> ODE backfill -> DMD).")
    atomic_write(folder / card.weights, lambda tmp: shutil.copyfile(student_weights, tmp), mode=0o644)
    save_card(card, folder)
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    if size > MAX_CARD_BYTES:
        raise ValueError(f"card folder {folder} is {size / 2**20:.1f} MB, over the {MAX_CARD_BYTES / 2**20:.0f} MB "
                         "limit: shrink the model in the recipe")
    log.info("wrote model card %s (%.1f MB)", folder, size / 2**20)
    return folder


def run(recipe: Recipe, out: str | Path, d: Dist, card: str | Path | None = None, resume: bool = False) -> Path:
    out = Path(out)
    timings: dict[str, float] = {}

    def stage(name: str, done: Path, fn) -> Path:
        if done.exists():
            log.info("stage %s: already done (%s)", name, done)
            return done
        t0 = time.time()
        result = fn()
        timings[name] = round(time.time() - t0, 1)
        return result

    data_dir = out / "data"
    stage("data", data_dir / data_stage.INDEX, lambda: data_stage.build(recipe.data, data_dir, d))
    t_path = stage("teacher", out / "teacher" / teacher.WEIGHTS,
                   lambda: teacher.train(recipe, data_dir, out / "teacher", d, resume=resume))
    o_path = stage("ode", out / "ode" / ode_backfill.WEIGHTS,
                   lambda: ode_backfill.train(recipe, data_dir, t_path, out / "ode", d, resume=resume))
    s_path = stage("dmd", out / "dmd" / dmd.WEIGHTS,
                   lambda: dmd.train(recipe, data_dir, t_path, o_path, out / "dmd", d, resume=resume,
                                     pairs_dir=out / "ode" / ode_backfill.TRAJECTORIES))
    folder = Path(card) if card else out / "card"
    if d.is_main:
        write_card(recipe, s_path, folder)
        atomic_write_text(out / "timings.json", json.dumps(timings, indent=1))
    d.barrier()
    return folder


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="recipe YAML (defaults: the toon recipe)")
    p.add_argument("--out", required=True, help="run folder (data/, teacher/, ode/, dmd/ go inside)")
    p.add_argument("--card", help="model card folder to write (default: <out>/card)")
    p.add_argument("--resume", action="store_true", help="continue interrupted stages from their checkpoints")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    args = p.parse_args(argv)
    try:
        recipe = load_recipe(args.config)
    except ValueError as exc:          # a bad recipe: one line, no traceback
        raise SystemExit(f"engine.train.pipeline: {exc}") from None
    d = setup(args.device, threads=recipe.threads or None)
    try:
        run(recipe, args.out, d, card=args.card, resume=args.resume)
    finally:
        teardown(d)


if __name__ == "__main__":
    main()

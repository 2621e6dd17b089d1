"""The student's own latents on training speech, labelled with the face the speech was drawn with.

Why: the rig's control reader (engine/codecs/rigdecoder.py) first learns on encoder latents of
rendered frames, perturbed the way a generator errs. The student errs in its own way: on held-out
speech the shipped reader followed the clips' jaw at r 0.76 on the student's latents. Streaming
the student over training clips (unseen seeds, as a user's voice is) and keeping each clean
latent with the clip's controls for that frame gives the reader examples of exactly what it
reads at run time. Only the mouth is a label there: the student's head pose does not follow the
clip's (rigdecoder's docstring), so `train_rig` leaves pose out of the loss on these examples.

Deterministic: the clip, the identity and the sampler's noise all follow the seed.
"""
from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


@torch.no_grad()
def clip_latents(card_dir: str, seed: int, seconds: float, noise_seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(latents, reference latent, controls in READ_CONTROLS order) of one training clip streamed by the student."""
    from engine.card import load_card
    from engine.clips.clip import make_clip
    from engine.codecs.rigdecoder import READ_CONTROLS
    from engine.stream import AvatarStream
    from engine.toon.creator import training_identity
    from engine.toon.render import CONTROL_NAMES, render_portrait

    card = load_card(card_dir)
    clip = make_clip(seed, card.fps, seconds)
    identity = training_identity(seed, 0.0)
    stream = AvatarStream(card, seed=noise_seed)
    stream.start(render_portrait(identity, card.width))       # no identity: nothing is drawn, latents kept
    spf = clip.sample_rate // int(card.fps)
    blocks = [stream.sampler.step(f) for f in stream.feature_blocks(stream.audio.push(clip.audio[: clip.n_frames * spf]))]
    blocks += [stream.sampler.step(f) for f in stream.final_blocks()]
    blocks += list(stream.sampler.flush())
    z = torch.cat([b[0] for b in blocks if b is not None])[: clip.n_frames].float()
    cols = [CONTROL_NAMES.index(c) for c in READ_CONTROLS]
    y = torch.from_numpy(clip.controls[: len(z)][:, cols].astype(np.float32))
    return z, stream.sampler.ref.reshape(1, *z.shape[1:]).float(), y


def _one(args: tuple[str, int, float]) -> tuple[torch.Tensor, ...]:
    torch.set_num_threads(1)
    return clip_latents(*args)


def student_latents(card_dir: str | Path, seeds: list[int], seconds: float = 4.0,
                    workers: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(latents, reference latents, controls) of every frame of the clips `seeds`, one process per core."""
    jobs = [(str(card_dir), int(s), float(seconds)) for s in seeds]
    zs, zr, ys = [], [], []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, (z, ref, y) in enumerate(pool.map(_one, jobs)):
            zs.append(z.half())
            zr.append(ref.half().expand(len(z), -1, -1, -1))
            ys.append(y)
            if (i + 1) % 20 == 0:
                log.info("student latents: %d/%d clips", i + 1, len(jobs))
    return torch.cat(zs).float(), torch.cat(zr).float(), torch.cat(ys)

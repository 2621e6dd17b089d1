"""Pictures outside what the default model draws well are named, in one sentence, on add."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from engine.domain import advice, measure
from engine.toon import random_identity, render_portrait

DATA = Path(__file__).parent / "data"


def test_cartoon_portraits_fit():
    for seed in (100000, 100001, 100002, 123456):
        fit = measure(render_portrait(random_identity(seed), 512))
        assert fit.ok, (seed, fit)


def test_photos_and_grey_pictures_do_not():
    for name in ("photo_astronaut.jpg", "photo_cat.jpg"):
        pixels = np.asarray(Image.open(DATA / name).convert("RGB"))
        note = advice(pixels)
        assert note and "outside what the default model draws well" in note and "textured like a photo" in note
    grey = render_portrait(random_identity(5), 512).mean(-1, keepdims=True).astype(np.uint8).repeat(3, -1)
    assert "black and white" in advice(grey)


def _run(args, home):
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local" / "share")}
    return subprocess.run([sys.executable, "-m", "avatarcam.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_avatars_add_says_so_for_a_photo_and_not_for_a_cartoon(tmp_path):
    photo = _run(["avatars", "add", str(DATA / "photo_astronaut.jpg"), "--name", "astro"], tmp_path)
    assert photo.returncode == 0, photo.stderr
    assert "added astro" in photo.stdout
    notes = [line for line in photo.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "outside what the default model draws well" in notes[0]
    cartoon = tmp_path / "toon.png"
    Image.fromarray(render_portrait(random_identity(42), 512)).save(cartoon)
    ok = _run(["avatars", "add", str(cartoon), "--name", "toon"], tmp_path)
    assert ok.returncode == 0 and "note:" not in ok.stderr

"""The README's OBS picture: a green-screen avatar keyed over a scene, in a real OBS under Xvfb.

    python -m ui.obs_screenshot --out docs/screenshots

AvatarCam's own controller places the keyed source and its Chroma Key (avatarcam.obs_keyed), exactly
as during a stream. One substitution, because a picture needs no camera device: the source shows a
frame of the avatar (an image_source) instead of capturing the virtual camera. Writes the scene as
OBS renders it (obs-keyed-scene.png) and OBS's window around it (obs-keyed-window.png).
"""
from __future__ import annotations

import argparse
import base64
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from avatarcam.obs import ObsConfig, ObsController
from avatarcam.obs_keyed import KeyedSource
from engine.toon import random_identity, render_portrait
from engine.toon.chroma import conflict_message
from engine.toon.creator import set_control, set_key
from ui.xvfb import start_xvfb, stop_process

SCENE = "Game"
SHIRT = (77, 124, 172)   # a blue from the clothes palette: far from the green key


def backdrop(width: int = 1280, height: int = 720) -> Image.Image:
    """A stand-in game: sky, hills and a sun (anything but flat, so the cut-out shows)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = np.stack([60 + 80 * yy / height, 110 + 90 * yy / height, 200 + 40 * yy / height], -1)
    hill = yy > height * (0.62 + 0.08 * np.sin(xx / 140.0))
    img = np.where(hill[..., None], np.stack([40 + 0 * xx, 120 + 30 * np.sin(xx / 37.0), 60 + 0 * xx], -1), sky)
    sun = (xx - width * 0.8) ** 2 + (yy - height * 0.2) ** 2 < (height * 0.09) ** 2
    img[sun] = (255, 214, 90)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def main(argv: list[str] | None = None) -> int:
    from tests.fixtures_obs import ObsServer, free_port

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="avatarcam-obs-shot-"))
    look = set_key(set_control(set_control(random_identity(17), "hat", "beanie"), "shirt", SHIRT), "green")
    assert conflict_message(look) is None, conflict_message(look)
    Image.fromarray(render_portrait(look, 512)).save(work / "avatar.png")
    display, xvfb = start_xvfb("1600x900x24")
    server = ObsServer(work / "xdg", display, free_port(), "shot-Password-1")
    try:
        server.start()
        ws = server.client()
        from obswebsocket import requests as R
        video = ws.call(R.GetVideoSettings()).datain
        width, height = int(video["baseWidth"]), int(video["baseHeight"])
        backdrop(width, height).save(work / "game.png")
        ws.call(R.CreateScene(sceneName=SCENE))
        ws.call(R.CreateInput(sceneName=SCENE, inputName="Game capture", inputKind="image_source",
                              inputSettings={"file": str(work / "game.png")}, sceneItemEnabled=True))
        ws.call(R.SetCurrentProgramScene(sceneName=SCENE))
        keyed = KeyedSource(scene=SCENE, key=look.bg_a, input_kind="image_source",
                            input_settings={"file": str(work / "avatar.png")}, layout_file=work / "layout.json")
        (work / "layout.json").write_text(json.dumps({"positionX": width * 0.62, "positionY": height * 0.3,
                                                      "scaleX": height / 900, "scaleY": height / 900}))
        with ObsController(ObsConfig(port=server.port, password=server.password, keyed=keyed)) as ctl:
            ctl.start_stream_scene()
            if not (ctl.wait_connected(30) and ctl.wait_idle(30)):
                raise SystemExit(f"OBS did not take the keyed source: {ctl.status}")
            time.sleep(1.5)   # a few rendered frames
            shot = ws.call(R.GetSourceScreenshot(sourceName=SCENE, imageFormat="png", imageWidth=width))
            data = shot.datain["imageData"].split(",", 1)[1]
            (args.out / "obs-keyed-scene.png").write_bytes(base64.b64decode(data))
            window = args.out / "obs-keyed-window.png"
            subprocess.run(["import", "-window", "root", str(window)],
                           env={"DISPLAY": display, "PATH": "/usr/bin:/bin"}, timeout=60, check=True)
            with Image.open(window) as img:   # OBS's window only, not the empty screen around it
                img.crop(img.convert("L").point(lambda v: 255 if v > 8 else 0).getbbox()).save(window)
            ctl.restore()
            ctl.wait_idle(30)
        ws.disconnect()
    finally:
        server.stop()
        stop_process(xvfb)
    print(args.out / "obs-keyed-scene.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Picture measures for the evaluation: does the avatar stay itself while it talks?

Every measure compares generated frames with the ORIGINAL portrait at output resolution (not the
portrait as a decoder redraws it), inside regions read off the identity's geometry
(`engine.toon.regions`):

- fidelity: PSNR of silent frames against the portrait, and the eye box's edge energy (mean
  absolute difference of neighbouring grey levels) as a fraction of the portrait's;
- smear ratio: mean eye-box distance to the portrait on the widest-open 10 % of frames (by the
  mouth probe) divided by the same on closed-mouth frames, blinks left out of both. The distance
  is taken after the best shift of the box within +-ALIGN_REACH pixels (`aligned_distance`), so
  a head that nods or turns while it talks (the renderer draws that) is not counted as smear
  (yaw parallax still is: eyes, glasses and outline shift by different amounts). The ratio is
  taken against closed-mouth frames of the same speech (between syllables): the head sways only
  while the avatar speaks, so closed frames from silent stretches would count that sway as smear;
  the ratio against every closed frame, silence included, is reported beside it. Beside both, the
  eyes' sharpness on those frames (edge energy, widest-open / closed): a smear lowers it, motion not;
- jitter: mean absolute frame-to-frame change outside the mouth in silence, blinks left out;
- blinks: an eye is "open" while its box holds at least half the portrait's eye-white pixels
  (the renderer's white is (252, 252, 250) for every identity); a blink is both eyes shut;
- lost eyes: a frame where one eye is shut and the other open (a blink shuts both), or both shut
  for longer than any blink (> LONG_SHUT frames). That is how "an eye disappeared" is detected.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EYE_WHITE = np.array([252, 252, 250], np.int16)
WHITE_TOL = 28           # per channel, for "is eye white" after decoding
OPEN_FRACTION = 0.5      # an eye is open with >= this share of the portrait's white pixels
LOST_FRACTION = 0.25     # ... and clearly shut below this
LONG_SHUT = 8            # frames (320 ms at 25 fps): longer than the renderer's blink (210 ms)
BLINK_MARGIN = 2         # frames around a blink left out of jitter and smear
ALIGN_REACH = 10         # pixels (at 512) the eye box may shift to meet the portrait's: head motion


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def edge_energy(img: np.ndarray) -> float:
    g = img.astype(np.float32).mean(-1)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


def aligned_distance(frame: np.ndarray, ref_grey: np.ndarray, box: tuple[int, int, int, int],
                     reach: int = ALIGN_REACH) -> float:
    """Mean absolute grey difference of `frame`'s box to `ref_grey` (the portrait's box, grey), at the
    best whole-pixel shift within +-reach: a coarse search every 2 pixels, then its neighbours."""
    grey = frame.astype(np.float32).mean(-1)
    t, b, l, r = box
    h, w = grey.shape

    def at(dy: int, dx: int) -> float:
        if t + dy < 0 or l + dx < 0 or b + dy > h or r + dx > w:
            return float("inf")
        return float(np.abs(grey[t + dy:b + dy, l + dx:r + dx] - ref_grey).mean())

    coarse = min(((at(dy, dx), dy, dx) for dy in range(-reach, reach + 1, 2) for dx in range(-reach, reach + 1, 2)))
    _, y0, x0 = coarse
    return min(at(y0 + dy, x0 + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def white_pixels(img: np.ndarray) -> int:
    return int((np.abs(img.astype(np.int16) - EYE_WHITE).max(-1) <= WHITE_TOL).sum())


@dataclass
class Geometry:
    """The portrait at output size and where its eyes and mouth are."""

    portrait: np.ndarray
    eye_box: tuple[int, int, int, int]
    eyes: list[tuple[int, int, int, int]]
    mouth_box: tuple[int, int, int, int]

    @classmethod
    def of(cls, avatar_seed: int, size: int, identity=None) -> "Geometry":
        from engine.toon import random_identity, render_portrait
        from engine.toon.regions import eye_box, eye_boxes, mouth_box
        ident = identity if identity is not None else random_identity(avatar_seed)
        return cls(render_portrait(ident, size), eye_box(ident, size), eye_boxes(ident, size), mouth_box(ident, size))

    def crop(self, img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        t, b, l, r = box
        return img[t:b, l:r]

    def outside_mouth(self) -> np.ndarray:
        mask = np.ones(self.portrait.shape[:2], bool)
        t, b, l, r = self.mouth_box
        mask[t:b, l:r] = False
        return mask


class PictureRecorder:
    """Per-frame picture measures of one stream, plus a few frames kept for the contact sheet."""

    KEEP = ("silent", "widest_open", "worst_eyes", "blink")

    def __init__(self, geo: Geometry, n: int):
        self.geo = geo
        self.rec = {k: np.full(n, np.nan, np.float32) for k in ("psnr", "eye_dist", "eye_edge", "white_l", "white_r")}
        self.portrait_eye_edge = edge_energy(geo.crop(geo.portrait, geo.eye_box))
        self.portrait_white = [max(1, white_pixels(geo.crop(geo.portrait, e))) for e in geo.eyes]
        self.kept: dict[str, tuple[float, int, np.ndarray]] = {}
        self._eye_ref = geo.crop(geo.portrait, geo.eye_box).astype(np.float32).mean(-1)

    def add(self, i: int, frame: np.ndarray, opened: float) -> None:
        g = self.geo
        eyes = g.crop(frame, g.eye_box)
        r = self.rec
        r["psnr"][i] = psnr(frame, g.portrait)
        r["eye_dist"][i] = aligned_distance(frame, self._eye_ref, g.eye_box)
        r["eye_edge"][i] = edge_energy(eyes)
        r["white_l"][i], r["white_r"][i] = (white_pixels(g.crop(frame, e)) / w for e, w in zip(g.eyes, self.portrait_white))
        shut = max(r["white_l"][i], r["white_r"][i]) < OPEN_FRACTION
        self._keep("widest_open", opened, i, frame)
        self._keep("blink", -min(r["white_l"][i], r["white_r"][i]) if shut else -np.inf, i, frame)
        self._keep("worst_eyes", -np.inf if shut else r["eye_dist"][i], i, frame)
        if i == 150:
            self.kept["silent_candidate"] = (0.0, i, frame.copy())

    def _keep(self, key: str, score: float, i: int, frame: np.ndarray) -> None:
        if np.isfinite(score) and (key not in self.kept or score > self.kept[key][0]):
            self.kept[key] = (float(score), i, frame.copy())


def eye_states(white_l: np.ndarray, white_r: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame: both shut (blink), and lost eyes (one shut while the other is open, or a long shut)."""
    wl, wr = np.nan_to_num(white_l, nan=1.0), np.nan_to_num(white_r, nan=1.0)
    both_shut = (wl < OPEN_FRACTION) & (wr < OPEN_FRACTION)
    one_lost = ((wl < LOST_FRACTION) & (wr >= OPEN_FRACTION)) | ((wr < LOST_FRACTION) & (wl >= OPEN_FRACTION))
    long_shut = np.zeros_like(both_shut)
    start = None
    for i, s in enumerate(np.append(both_shut, False)):
        if s and start is None:
            start = i
        elif not s and start is not None:
            if i - start > LONG_SHUT:
                long_shut[start:i] = True
            start = None
    return {"blink": both_shut & ~long_shut, "lost": one_lost | long_shut}


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    out = mask.copy()
    for s in range(1, k + 1):
        out[s:] |= mask[:-s]
        out[:-s] |= mask[s:]
    return out


def picture_summary(rec: dict, silent: np.ndarray, fps: float, portrait_eye_edge: float) -> dict:
    """The issue's measures from one stream's per-frame record (`silent`: frames inside silent stretches)."""
    n = rec["frames"]
    silent = np.asarray(silent[:n], bool)
    states = eye_states(rec["white_l"][:n], rec["white_r"][:n])
    blink, lost = states["blink"], states["lost"]
    near_blink = _dilate(blink, BLINK_MARGIN)
    onsets = blink & ~np.concatenate([[False], blink[:-1]])
    opened = rec["open"][:n]
    calm = ~near_blink & ~lost
    finite_open = np.where(calm, opened, np.nan)
    wide = calm & (opened >= np.nanquantile(finite_open, 0.9)) if np.isfinite(finite_open).any() else calm & False
    from engine.tools.lipsync import CLOSED_TARGET
    closed = calm & (opened < CLOSED_TARGET)
    eye_dist = rec["eye_dist"][:n]
    quiet = silent & ~near_blink
    mean = lambda x, m: float(np.nanmean(x[m])) if m.any() else float("nan")  # noqa: E731
    silent_minutes = silent.sum() / fps / 60
    dist_wide, dist_closed = mean(eye_dist, wide), mean(eye_dist, closed)
    dist_closed_speaking = mean(eye_dist, closed & ~silent)
    return {
        "frames": n, "silent_frames": int(silent.sum()),
        "psnr_silence": mean(rec["psnr"][:n], quiet),
        "eye_edge_ratio_silence": mean(rec["eye_edge"][:n], quiet) / portrait_eye_edge,
        "eye_dist_closed": dist_closed, "eye_dist_widest_open": dist_wide,
        "eye_dist_closed_speaking": dist_closed_speaking,
        "smear_ratio": dist_wide / max(dist_closed_speaking, 1e-6),
        "smear_ratio_vs_all_closed": dist_wide / max(dist_closed, 1e-6),
        "eye_sharpness_wide_vs_closed": mean(rec["eye_edge"][:n], wide) / max(mean(rec["eye_edge"][:n], closed), 1e-6),
        "jitter_outside_mouth_silence": mean(rec["change_outside"][:n], quiet),
        "jitter_outside_mouth_silence_with_blinks": mean(rec["change_outside"][:n], silent),
        "blinks_per_min_silence": float((onsets & silent).sum() / silent_minutes) if silent_minutes else float("nan"),
        "blinks_per_min": float(onsets.sum() / (n / fps / 60)) if n else float("nan"),
        "lost_eye_frames": int(lost.sum()),
        "lost_eye_first_frames": np.flatnonzero(lost)[:10].tolist(),
    }


def picture_targets(s: dict) -> dict:
    """The issue's targets, each True/False."""
    return {
        "psnr_silence_ge_30": s["psnr_silence"] >= 30.0,
        "eye_edge_ratio_ge_0.8": s["eye_edge_ratio_silence"] >= 0.8,
        "smear_ratio_le_1.5": s["smear_ratio"] <= 1.5,
        "eye_sharpness_ge_0.9": s.get("eye_sharpness_wide_vs_closed", float("nan")) >= 0.9,
        "no_lost_eye": s["lost_eye_frames"] == 0,
        "jitter_le_0.5": s["jitter_outside_mouth_silence"] <= 0.5,
        "blinks_8_to_20_per_min": 8.0 <= s["blinks_per_min_silence"] <= 20.0,
    }


def contact_sheet(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path, tile: int = 256) -> None:
    """One row per avatar: labelled tiles (portrait, silent frame, widest-open, worst eyes, a blink)."""
    from PIL import Image, ImageDraw
    cols = max(len(r[1]) for r in rows)
    label_h = 18
    sheet = Image.new("RGB", (cols * tile, len(rows) * (tile + label_h)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for y, (name, tiles) in enumerate(rows):
        for x, (label, img) in enumerate(tiles):
            im = Image.fromarray(img).resize((tile, tile), Image.LANCZOS)
            sheet.paste(im, (x * tile, y * (tile + label_h) + label_h))
            draw.text((x * tile + 4, y * (tile + label_h) + 3), f"{name}: {label}", fill=(235, 235, 235))
    sheet.save(path)


def eye_closeups(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], geo_by_name: dict, path, scale: int = 2) -> None:
    """The eye boxes of the same tiles at 2x, pixel for pixel: where detail lives or dies."""
    crops = []
    for name, tiles in rows:
        g = geo_by_name[name]
        crops.append((name, [(label, np.repeat(np.repeat(g.crop(img, g.eye_box), scale, 0), scale, 1))
                             for label, img in tiles]))
    from PIL import Image, ImageDraw
    w = max(sum(c.shape[1] for _, c in tiles) for _, tiles in crops)
    h = sum(max(c.shape[0] for _, c in tiles) + 16 for _, tiles in crops)
    sheet = Image.new("RGB", (w, h), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    y = 0
    for name, tiles in crops:
        x = 0
        for label, c in tiles:
            sheet.paste(Image.fromarray(c), (x, y + 16))
            draw.text((x + 3, y + 2), f"{name}: {label}", fill=(235, 235, 235))
            x += c.shape[1]
        y += max(c.shape[0] for _, c in tiles) + 16
    sheet.save(path)

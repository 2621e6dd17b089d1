"""Picture files in: open, check and decode any image a user picks, then crop it square for an avatar.

Why square crops and not letterboxing: the reference image is the style anchor, i.e. frame zero of
the video the model continues, so letterbox bars would become part of the avatar (and waste pixels
the face needs). The face is the subject, so losing the edges of a wide or tall picture is cheap;
for tall pictures the crop sits in the upper part, where heads are in portraits.
"""
from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np

from avatarcam.errors import ConfigError

log = logging.getLogger(__name__)

IMAGE_SIZE = 512          # canonical reference image: square, RGB
MIN_SIDE = 128            # smaller pictures carry too little face to animate
MAX_PIXELS = 120_000_000  # refuse larger images before decoding them (decompression bombs); phone photos
# (48-108 MP) are scaled down: JPEGs decode at 1/8 scale, others take a few hundred MB for a moment


def _fail(path: Path, problem: str) -> ConfigError:
    return ConfigError(f"cannot use image '{path}': {problem}")


def _apply_icc(img, path: Path):
    """Convert an embedded colour profile to sRGB (phone photos in Display P3, CMYK print files)."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "CMYK"):
        return img
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception as e:  # a broken profile: the pixels are still usable without it
        log.info("%s: ignoring its colour profile (%s)", path, e)
        return img


def _to_rgb(img, path: Path):
    """Any Pillow mode -> 8-bit RGB; transparency is composited on white (what a viewer shows)."""
    from PIL import Image

    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img).astype(np.float64)
        top = float(arr.max()) if arr.size else 0.0
        if mode == "F" and top <= 1.0:
            arr = arr * 255.0
        elif top > 255.0:  # 16-bit samples
            arr = arr / 257.0
        img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "L")
        mode = "L"
    if "A" in mode or mode in ("RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    img = _apply_icc(img, path)
    try:
        return img.convert("RGB")
    except ValueError as e:
        raise _fail(path, f"its colour mode {mode} cannot be converted to RGB ({e})") from e


def _header_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the file header alone, for messages about images Pillow refuses to open."""
    from PIL import Image

    Image.init()
    try:
        with open(path, "rb") as fp:
            prefix = fp.read(16)
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                if accept is not None:
                    ok = accept(prefix)
                    if not ok or isinstance(ok, str):
                        continue
                fp.seek(0)
                try:
                    with factory(fp, str(path)) as im:
                        return im.size
                except Exception:
                    continue
    except OSError:
        pass
    return None


def load_picture(path: str | Path, *, min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS,
                 draft_size: int | None = IMAGE_SIZE):
    """Open, check and decode an image file: an RGB Pillow image, EXIF orientation applied.

    The size checks run on the header, before any pixel is decoded, so a decompression bomb costs
    nothing. ``draft_size`` lets JPEG decode at a reduced scale that still covers it (much faster
    for 40 MP photos). Every failure is a ConfigError naming the file and the problem.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file" if not path.exists() else "it is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # our own limit is checked below
            img = Image.open(path)
    except UnidentifiedImageError as e:
        raise _fail(path, "it is not an image format Pillow can read (use PNG, JPEG, WebP, GIF, BMP or TIFF)") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        size = _header_size(path)
        dims = f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else "too many pixels"
        raise _fail(path, f"it is {dims}, too large to decode safely (a possible decompression bomb); "
                          f"the limit is {max_pixels:,} pixels") from e
    except OSError as e:
        raise _fail(path, f"it cannot be opened ({e})") from e
    with img:
        fmt = img.format or path.suffix.lstrip(".").upper() or "image"
        w, h = img.size
        if w * h > max_pixels:
            raise _fail(path, f"it is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,} pixels "
                              "(scale it down first)")
        if min(w, h) < min_side:
            raise _fail(path, f"it is {w}x{h}; each side must be at least {min_side} px")
        try:
            if draft_size and fmt in ("JPEG", "MPO"):
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = _to_rgb(upright, path)
            rgb.load()
        except ConfigError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, Image.DecompressionBombError) as e:
            raise _fail(path, f"the {fmt} data is damaged or truncated ({e})") from e
    return rgb


def square_crop(img, size: int = IMAGE_SIZE):
    """Crop the largest square (centred; upper part for tall pictures) and resize to ``size``."""
    from PIL import Image

    w, h = img.size
    side = min(w, h)
    left = (w - side) // 2
    top = (h - side) // 4  # heads sit in the upper part of a portrait
    box = (left, top, left + side, top + side)
    return img.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)

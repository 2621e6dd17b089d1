"""The avatar library on disk: one folder per avatar with its reference image, a thumbnail and a card.

Layout: ``<data dir>/avatars/<slug>/{image.png, thumb.png, avatar.yaml}``. The data dir is
``platformdirs.user_data_dir('avatarcam')``, or ``$AVATARCAM_HOME`` (tests, portable installs).
Two parts: `AvatarFolders` keeps the folders on disk whole; `AvatarLibrary` is what a user does
with avatars (add a picture, draw a cartoon, name, rename, remove, pick one). Picture files are
read and cropped square in `pictures.py`.

Why the folder dance: every avatar is built in a private ``.tmp-*`` folder inside the library root
and renamed into place, so a crash or a bad image never leaves half an avatar, and readers never
need a lock. Name checks and renames are serialised by a lock file, so two processes adding at once
cannot pick the same folder.
"""
from __future__ import annotations

import contextlib
import datetime
import io
import logging
import os
import secrets
import shutil
import tempfile
import time
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import yaml

from avatarcam.errors import AvatarCamError, ConfigError
from avatarcam.pictures import IMAGE_SIZE, MAX_PIXELS, load_picture, square_crop
from engine.files import atomic_write_bytes, fsync_dir

log = logging.getLogger(__name__)

THUMB_SIZE = 128          # gallery thumbnail
MAX_NAME_LENGTH = 64
IMAGE_FILE, THUMB_FILE, CARD_FILE = "image.png", "thumb.png", "avatar.yaml"
LOCK_FILE = ".lock"
LOCK_TIMEOUT_S = 15.0
STALE_TEMP_S = 3600.0     # a .tmp-* folder this old is left over from a crash
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}


# ------------------------------------------------------------------------------------------ paths

def data_dir() -> Path:
    """Where AvatarCam keeps user data: ``$AVATARCAM_HOME`` if set, else the platform's data dir."""
    home = os.environ.get("AVATARCAM_HOME", "").strip()
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("avatarcam"))


def default_library_root() -> Path:
    return data_dir() / "avatars"


# ------------------------------------------------------------------------------------------ names

def slugify(name: str) -> str:
    """The folder name for a display name: lower case, letters/digits (any script), '-' and '_'."""
    text = unicodedata.normalize("NFKC", str(name)).casefold()
    out: list[str] = []
    for ch in text:
        if ch.isalnum() or ch in "-_":
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-_")


def check_name(name: str) -> tuple[str, str]:
    """Validate a display name; returns (clean name, slug) or raises ConfigError saying why."""
    if not isinstance(name, str):
        raise ConfigError(f"an avatar name must be text, got {type(name).__name__}")
    clean = " ".join(name.split())
    if not clean:
        raise ConfigError("an avatar name cannot be empty")
    if any(unicodedata.category(ch).startswith("C") for ch in clean):
        raise ConfigError(f"avatar name {name!r} contains control characters")
    if len(clean) > MAX_NAME_LENGTH:
        raise ConfigError(f"avatar name is {len(clean)} characters long; the limit is {MAX_NAME_LENGTH}")
    slug = slugify(clean)
    if not slug:
        raise ConfigError(f"avatar name {name!r} has no letters or digits; use letters, digits, spaces, '-' or '_'")
    if slug in _WINDOWS_RESERVED:
        raise ConfigError(f"avatar name {name!r} is reserved by Windows as a device name; choose another")
    return clean, slug


# ------------------------------------------------------------------------------------------ files

def _save_png(img, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue(), fsync=True)


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive lock between processes (flock / msvcrt); also excludes threads of one process."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if os.name == "nt":
                    import msvcrt

                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                else:
                    import fcntl

                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AvatarCamError(f"the avatar library is busy: another AvatarCam process holds {path} "
                                         f"for more than {timeout:g} s; close it and try again") from None
                time.sleep(0.02)
        yield
    finally:
        try:
            if os.name == "nt":
                import msvcrt

                with contextlib.suppress(OSError):
                    os.lseek(fd, 0, os.SEEK_SET)
                    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        finally:
            os.close(fd)  # closing releases flock


# ------------------------------------------------------------------------------------------ library

@dataclass(frozen=True)
class Avatar:
    """One avatar as stored: what the picker shows and what the session needs."""

    name: str
    slug: str
    folder: Path
    prompt: str = ""
    model: str | None = None    # None: the model from the settings (engine.model)
    seed: int | None = None     # cartoon avatars: the identity seed that redraws them
    source: str | None = None   # image avatars: the file they were made from
    kind: str = "image"         # "image" or "cartoon"
    created: str = ""           # ISO 8601, UTC
    look: object = None         # creator avatars: the full engine.toon Identity (a seed alone cannot redraw it)

    @property
    def image_path(self) -> Path:
        return self.folder / IMAGE_FILE

    @property
    def thumb_path(self) -> Path:
        return self.folder / THUMB_FILE

    def load_image(self) -> np.ndarray:
        """The reference image as uint8 HxWx3 RGB."""
        from PIL import Image

        try:
            with Image.open(self.image_path) as img:
                return np.asarray(img.convert("RGB")).copy()
        except (OSError, ValueError) as e:
            raise ConfigError(f"avatar {self.name!r}: its image {self.image_path} cannot be read ({e}); "
                              "remove the avatar and add it again") from e

    def fit_advice(self) -> str | None:
        """One sentence when the picture is outside what the default model draws well, else None.

        Measured on the picture (engine.domain: flatness, colour, the toon encoder's round trip), so
        a photo or a drawing in another style is named before the user streams it.
        """
        from PIL import Image

        from engine.domain import advice
        with Image.open(self.image_path) as img:
            pixels = np.asarray(img.convert("RGB"))
        return advice(pixels)

    def identity(self):
        """A cartoon avatar's rig (`engine.toon.identity.Identity`), so the engine can draw it sharp; None
        for pictures. The engine checks that the rig's portrait is this avatar's picture before using it."""
        if self.kind != "cartoon":
            return None
        if self.look is not None:
            return self.look
        if self.seed is None:
            return None
        from engine.toon.identity import random_identity
        return random_identity(self.seed)

    def card(self) -> dict:
        card = {"name": self.name, "prompt": self.prompt, "model": self.model, "seed": self.seed,
                "source": self.source, "kind": self.kind, "created": self.created}
        if self.look is not None:
            from engine.toon.creator import identity_to_card
            card["look"] = identity_to_card(self.look)
        return card


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


class AvatarFolders:
    """The library's folders on disk, kept whole: every change is a rename, every rename under one lock.

    A new avatar is written in a private ``.tmp-*`` folder and renamed into place; a removed one is
    renamed to ``.trash-*`` before its files go. Readers therefore never see half an avatar and
    never take the lock.
    """

    def __init__(self, root: Path, lock_timeout_s: float = LOCK_TIMEOUT_S):
        self.root = root
        self.lock_timeout_s = lock_timeout_s

    def read(self, folder: Path) -> Avatar:
        data = yaml.safe_load((folder / CARD_FILE).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{CARD_FILE} is not a mapping")
        seed = data.get("seed")
        look = None
        if data.get("look") is not None:
            from engine.toon.creator import identity_from_card
            look = identity_from_card(data["look"])   # ValueError: listed as a damaged folder
        return Avatar(name=str(data.get("name") or folder.name), slug=folder.name, folder=folder,
                      prompt=str(data.get("prompt") or ""), model=data.get("model") or None,
                      seed=int(seed) if seed is not None else None, source=data.get("source"),
                      kind=str(data.get("kind") or "image"), created=str(data.get("created") or ""), look=look)

    def scan(self) -> list[Avatar]:
        """Every complete avatar, sorted by name; a damaged folder is logged and skipped."""
        if not self.root.is_dir():
            return []
        out = []
        for folder in self.root.iterdir():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                avatar = self.read(folder)
            except FileNotFoundError:
                continue  # removed while we looked, or not an avatar folder
            except (OSError, ValueError, TypeError, yaml.YAMLError) as e:
                log.warning("skipping damaged avatar folder %s: %s", folder, e)
                continue
            if avatar.image_path.is_file():
                out.append(avatar)
        return sorted(out, key=lambda a: (a.name.casefold(), a.slug))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.root / LOCK_FILE, self.lock_timeout_s):
            yield

    def create(self, picture, named: Callable[[], Avatar]) -> Avatar:
        """Save a square `picture` and its thumbnail privately, then, under the lock, ask `named` for
        the avatar (so the name it picks is still free when the folder takes it) and rename it into place."""
        with _disk_errors(f"create the avatar library folder {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)
            build = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            with _disk_errors("save the avatar"):
                _save_png(picture, build / IMAGE_FILE)
                _save_png(picture.resize((THUMB_SIZE, THUMB_SIZE), _lanczos()), build / THUMB_FILE)
                with self.locked():
                    self._sweep_stale()
                    avatar = named()
                    self.write_card(build, avatar)
                    os.replace(build, avatar.folder)
                    fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        return avatar

    @staticmethod
    def write_card(folder: Path, avatar: Avatar) -> None:
        text = yaml.safe_dump(avatar.card(), sort_keys=False, allow_unicode=True)
        atomic_write_bytes(folder / CARD_FILE, text.encode("utf-8"), fsync=True)

    def move(self, avatar: Avatar, renamed: Avatar) -> None:
        """Rename the folder and rewrite its card; the folder goes back if the card cannot be written."""
        moved = renamed.folder != avatar.folder
        with _disk_errors(f"rename avatar {avatar.name!r}"):
            if moved:
                os.replace(avatar.folder, renamed.folder)
            try:
                self.write_card(renamed.folder, renamed)
            except BaseException:
                if moved:  # name and folder must agree
                    os.replace(renamed.folder, avatar.folder)
                raise
            fsync_dir(self.root)

    def to_trash(self, avatar: Avatar) -> Path:
        """The avatar disappears in one rename; its files are then deleted from the returned folder."""
        trash = self.root / f".trash-{secrets.token_hex(6)}"
        with _disk_errors(f"remove avatar {avatar.name!r}"):
            os.replace(avatar.folder, trash)
        fsync_dir(self.root)
        return trash

    def _sweep_stale(self) -> None:
        """Remove build/trash folders left by a crashed process (never a young one: it may be in use)."""
        now = time.time()
        for entry in self.root.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > STALE_TEMP_S:
                    shutil.rmtree(entry, ignore_errors=True)
        for entry in self.root.glob(".trash-*"):
            shutil.rmtree(entry, ignore_errors=True)


class AvatarLibrary:
    """The avatars under ``root`` (default: ``<data dir>/avatars``): find them, make them, change them."""

    def __init__(self, root: str | Path | None = None, *, max_pixels: int = MAX_PIXELS,
                 lock_timeout_s: float = LOCK_TIMEOUT_S):
        self.root = Path(root).expanduser() if root is not None else default_library_root()
        self.max_pixels = max_pixels
        self.folders = AvatarFolders(self.root, lock_timeout_s)

    # -------------------------------------------------------------------------------- finding
    def list(self) -> list[Avatar]:
        """Every complete avatar, sorted by name; a damaged folder is logged and skipped."""
        return self.folders.scan()

    def _find(self, name: str) -> Avatar | None:
        try:
            _, slug = check_name(name)
        except ConfigError:
            return None
        folder = self.root / slug
        if (folder / CARD_FILE).is_file():
            with contextlib.suppress(OSError, ValueError, TypeError, yaml.YAMLError):
                return self.folders.read(folder)
        wanted = " ".join(name.split()).casefold()
        for avatar in self.list():
            if avatar.name.casefold() == wanted:
                return avatar
        return None

    def get(self, name: str) -> Avatar:
        """An avatar by display name or folder name (case-insensitive); ConfigError if there is none."""
        avatar = self._find(name)
        if avatar is None:
            names = ", ".join(repr(a.name) for a in self.list()) or "none yet"
            raise ConfigError(f"no avatar named {name!r}. Avatars: {names} (`avatarcam avatars list`)")
        return avatar

    def __contains__(self, name: str) -> bool:
        return self._find(name) is not None

    def default(self, current: str | None = None) -> Avatar:
        """The avatar to use: ``current`` if it exists, else the first; an empty library gets one."""
        if current:
            found = self._find(current)
            if found is not None:
                return found
            log.warning("avatar %r (avatar.current) is not in the library; using another", current)
        avatars = self.list()
        if avatars:
            return avatars[0]
        from avatarcam.data import DEFAULT_AVATAR_SEED

        try:   # a cartoon (not the bundled picture of it) so the engine can draw it with its rig
            return self.new_cartoon(seed=DEFAULT_AVATAR_SEED, name="Default")
        except ConfigError:
            found = self._find("Default")  # another process made it at the same moment
            if found is None:
                raise
            return found

    # -------------------------------------------------------------------------------- naming
    def _taken(self, slug: str) -> Avatar | None:
        """The avatar already using ``slug`` (as its folder, or as the slug of its display name)."""
        if (self.root / slug).exists():
            with contextlib.suppress(OSError, ValueError, TypeError, yaml.YAMLError):
                return self.folders.read(self.root / slug)
            return Avatar(name=slug, slug=slug, folder=self.root / slug)
        for avatar in self.list():
            if slugify(avatar.name) == slug:
                return avatar
        return None

    def _exists_error(self, name: str, other: Avatar) -> ConfigError:
        return ConfigError(f"an avatar named {other.name!r} already exists, so {name!r} cannot be used "
                           "(names must differ in more than case or punctuation); choose another name")

    def _pick_name(self, name: str | None, fallback: str) -> tuple[str, str]:
        """(name, slug) that is free now; called under the lock. Automatic names get a number."""
        if name is not None:
            clean, slug = check_name(name)
            other = self._taken(slug)
            if other is not None:
                raise self._exists_error(clean, other)
            return clean, slug
        try:
            base, _ = check_name(fallback[:MAX_NAME_LENGTH - 4])
        except ConfigError:
            base = "Avatar"
        for n in range(1, 10_000):
            clean = base if n == 1 else f"{base} {n}"
            clean, slug = check_name(clean)
            if self._taken(slug) is None:
                return clean, slug
        raise AvatarCamError(f"too many avatars named {base!r}")

    # -------------------------------------------------------------------------------- making
    def _create(self, img, name: str | None, fallback: str, fields: dict) -> Avatar:
        if name is not None:
            check_name(name)  # fail before the image work
        square = square_crop(img, IMAGE_SIZE)

        def named() -> Avatar:
            clean, slug = self._pick_name(name, fallback)
            return Avatar(name=clean, slug=slug, folder=self.root / slug, created=_now(), **fields)

        avatar = self.folders.create(square, named)
        log.info("added avatar %r in %s", avatar.name, avatar.folder)
        return avatar

    def add_image(self, path: str | Path, name: str | None = None, prompt: str = "") -> Avatar:
        """A new avatar from a picture; the name defaults to the file name (numbered if taken)."""
        path = Path(path)
        if name is not None:
            check_name(name)  # before decoding a large picture
        img = load_picture(path, max_pixels=self.max_pixels)
        return self._create(img, name, path.stem.replace("_", " "),
                            {"prompt": str(prompt), "source": str(path.resolve()), "kind": "image"})

    def new_cartoon(self, seed: int | None = None, name: str | None = None, prompt: str = "",
                    identity=None) -> Avatar:
        """A new cartoon avatar drawn by the toon generator: from a seed (drawn at random when None), or
        the creator's `identity`, stored whole in the card unless the seed alone redraws it."""
        from PIL import Image

        from engine.toon import random_identity, render_portrait
        from engine.toon.creator import check_identity

        if identity is not None:
            seed = identity.seed
            try:
                check_identity(identity)
            except ValueError as e:
                raise ConfigError(str(e)) from e
        if seed is None:
            seed = secrets.randbelow(2**31)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"a cartoon seed must be a non-negative integer, got {seed!r}")
        if name is not None:
            check_name(name)
        drawn = identity if identity is not None else random_identity(seed)
        look = None if drawn == random_identity(seed) else drawn
        img = Image.fromarray(np.ascontiguousarray(render_portrait(drawn, IMAGE_SIZE)), "RGB")
        return self._create(img, name, f"Toon {seed}",
                            {"prompt": str(prompt), "seed": seed, "kind": "cartoon", "look": look})

    # -------------------------------------------------------------------------------- changing
    def remove(self, name: str) -> None:
        """Delete an avatar: it disappears in one rename, then its files are deleted."""
        with self.folders.locked():
            avatar = self.get(name)
            trash = self.folders.to_trash(avatar)
        shutil.rmtree(trash, ignore_errors=True)
        log.info("removed avatar %r", avatar.name)

    def rename(self, old: str, new: str) -> Avatar:
        with self.folders.locked():
            avatar = self.get(old)
            clean, slug = check_name(new)
            other = self._taken(slug)
            if other is not None and other.slug != avatar.slug:
                raise self._exists_error(clean, other)
            renamed = replace(avatar, name=clean, slug=slug, folder=self.root / slug)
            self.folders.move(avatar, renamed)
        log.info("renamed avatar %r to %r", avatar.name, clean)
        return renamed

    def _update(self, name: str, **changes) -> Avatar:
        with self.folders.locked():
            avatar = replace(self.get(name), **changes)
            with _disk_errors(f"update avatar {avatar.name!r}"):
                self.folders.write_card(avatar.folder, avatar)
        return avatar

    def set_prompt(self, name: str, prompt: str) -> Avatar:
        return self._update(name, prompt=str(prompt or ""))

    def set_model(self, name: str, model: str | None) -> Avatar:
        """Pin an avatar to a model (a shipped name or a card folder); None follows the settings."""
        return self._update(name, model=str(model) if model else None)


@contextlib.contextmanager
def _disk_errors(what: str) -> Iterator[None]:
    """Disk full, permissions, a file held open by another program (Windows): a message, not a traceback."""
    try:
        yield
    except OSError as e:
        raise AvatarCamError(f"cannot {what}: {e.strerror or e} ({e.filename or 'avatar library'})") from e


def _lanczos():
    from PIL import Image

    return Image.Resampling.LANCZOS


# ------------------------------------------------------------------------------------------ text

def format_avatars(avatars: list[Avatar], current: str | None = None) -> str:
    """A terminal table: current marker, name, kind with its seed or source, model, prompt."""
    if not avatars:
        return "No avatars yet: `avatarcam avatars new` draws a cartoon, `avatarcam avatars add FILE` adds a picture."
    cur = slugify(current) if current else None
    rows = []
    for a in avatars:
        origin = (f"creator, seed {a.seed}" if a.look is not None else f"seed {a.seed}") if a.kind == "cartoon" \
            else Path(a.source).name if a.source else ""
        mark = "*" if cur is not None and (a.slug == cur or slugify(a.name) == cur) else " "
        rows.append((mark, a.name, f"{a.kind} ({origin})" if origin else a.kind, a.model or "-",
                     a.prompt or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(f"{r[0]} {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:<{widths[3]}}  {r[4]}".rstrip()
                     for r in rows)

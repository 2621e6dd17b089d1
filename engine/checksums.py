"""Checksums of a model card's files, written with the card and checked before its weights load.

Why: a bit-flipped or truncated weight file loads without complaint and streams noise. The card
folder's ``checksums.yaml`` lists the size and sha256 of every file beside ``model.yaml`` (the card
itself is left out so its settings stay editable; sub-folders such as a prompt cache grow at run time
and are left out too). Loading checks every listed file: sizes always, sha256 for files up to
``HASH_AT_LOAD_MAX`` (the shipped 18 MB card hashes in about 0.05 s); ``models verify`` hashes
everything. A file not listed (added after the list was written) is not checked: rewrite the list
with ``write_checksums`` (``avatarcam models checksum FOLDER``) whenever a card's files change on purpose.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from .files import atomic_write_text

CHECKSUM_FILE = "checksums.yaml"
CARD_FILE = "model.yaml"
HASH_AT_LOAD_MAX = 512 << 20          # bigger files (the 1.3B model copied in) get a size check at load
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def listed_files(folder: Path) -> list[Path]:
    """The files a card's checksums cover: every visible top-level file except the card and the list."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name not in (CARD_FILE, CHECKSUM_FILE))


def regenerate_hint(folder: Path) -> str:
    return f"avatarcam models checksum {folder}"


def write_checksums(folder: str | Path) -> Path:
    """(Re)write ``folder/checksums.yaml`` from the files there now; returns its path."""
    folder = Path(folder)
    files = {p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)} for p in listed_files(folder)}
    text = (f"# size and sha256 of this model's files, checked when it loads.\n"
            f"# After changing a file on purpose, rewrite this list: {regenerate_hint(folder)}\n"
            + yaml.safe_dump({"files": files}, sort_keys=True))
    return atomic_write_text(folder / CHECKSUM_FILE, text, mode=0o644)


def read_checksums(folder: str | Path) -> dict[str, dict] | None:
    """The listed files ({name: {size, sha256}}), or None when the card has no list. Raises ValueError
    naming the list when it is unreadable."""
    path = Path(folder) / CHECKSUM_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
                for v in files.values()):
            raise TypeError("each entry needs size and sha256")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is damaged ({type(exc).__name__}: {exc}); reinstall the model, or rewrite the "
                         f"list with `{regenerate_hint(Path(folder))}` if you trust its files") from exc
    return files


def check_checksums(folder: str | Path, deep: bool = False) -> list[str]:
    """Problems with the listed files, each naming the file and the fix; [] when all match (or none are
    listed). ``deep`` hashes every file; otherwise files over HASH_AT_LOAD_MAX get a size check only."""
    folder = Path(folder)
    try:
        files = read_checksums(folder)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    fix = (f"reinstall or re-import the model; if you changed the file on purpose, run "
           f"`{regenerate_hint(folder)}`")
    for name, want in sorted((files or {}).items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing ({CHECKSUM_FILE} lists it); {fix}")
            continue
        size = path.stat().st_size
        if size != want["size"]:
            problems.append(f"{path} is {size} bytes, {CHECKSUM_FILE} says {want['size']} (truncated or "
                            f"replaced); {fix}")
        elif (deep or size <= HASH_AT_LOAD_MAX) and file_sha256(path) != want["sha256"]:
            problems.append(f"{path} does not match its sha256 in {CHECKSUM_FILE} (damaged or replaced); {fix}")
    return problems

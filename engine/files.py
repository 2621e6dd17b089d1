"""Whole-or-nothing file writes: a temp file in the target's folder, then one rename.

A crash, a full disk or Ctrl-C mid-write leaves the old file (or none), never half of a new one. The
temp file sits in the same folder so the rename never crosses file systems. Standard library only, so
the app can use it without loading torch.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make renames inside ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], object], *, mode: int | None = None,
                 fsync: bool = False) -> Path:
    """Call ``write(tmp)`` with a temp path beside ``path``, then rename it over ``path``.

    The temp file is removed on any error, Ctrl-C included. ``mode`` sets the final permissions before
    any byte is written (mkstemp's default is 0600: right for secrets, wrong for files meant for
    everyone). ``fsync`` flushes the data and then the folder, for files a user would miss after a
    power cut (settings, the avatar library). Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mode: int | None = None,
                       fsync: bool = False) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), mode=mode, fsync=fsync)


def atomic_write_text(path: str | os.PathLike, text: str, *, mode: int | None = None, fsync: bool = False,
                      encoding: str = "utf-8") -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding=encoding), mode=mode, fsync=fsync)

"""engine.files: whole-or-nothing writes shared by the engine and the app."""
from __future__ import annotations

import stat

import pytest

from engine.files import atomic_write, atomic_write_bytes, atomic_write_text, fsync_dir


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_text_write_creates_missing_folders_and_returns_the_path(tmp_path):
    target = tmp_path / "a" / "b" / "x.yaml"
    assert atomic_write_text(target, "héllo\n") == target
    assert target.read_text(encoding="utf-8") == "héllo\n"


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"old")

    def half_then_fail(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_interrupt_mid_write_also_removes_the_temp(tmp_path):
    def interrupted(tmp: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_temp_file_sits_beside_the_target(tmp_path):
    seen = []
    atomic_write(tmp_path / "x.json", lambda tmp: seen.append(tmp) or open(tmp, "w").close())
    assert len(seen) == 1 and (tmp_path / seen[0]).parent == tmp_path
    assert seen[0] != str(tmp_path / "x.json")


def test_mode_is_applied_before_the_writer_runs(tmp_path):
    modes = []

    def write(tmp: str) -> None:
        modes.append(_mode(tmp_path / tmp))
        open(tmp, "w").close()

    atomic_write(tmp_path / "secret.yaml", write, mode=0o600)
    atomic_write(tmp_path / "report.json", write, mode=0o644)
    assert modes == [0o600, 0o644]
    assert _mode(tmp_path / "secret.yaml") == 0o600 and _mode(tmp_path / "report.json") == 0o644


def test_fsync_write_replaces_an_existing_file(tmp_path):
    target = tmp_path / "settings.yaml"
    target.write_text("old")
    atomic_write_text(target, "new", fsync=True, mode=0o600)
    assert target.read_text() == "new" and _mode(target) == 0o600


def test_fsync_dir_tolerates_a_missing_folder(tmp_path):
    fsync_dir(tmp_path)
    fsync_dir(tmp_path / "missing")  # returns quietly: callers treat it as best effort

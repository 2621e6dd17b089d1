"""The installers: shell scripts lint clean, PowerShell parses, and the real Linux installer installs,
runs, re-runs without changes and uninstalls, on this machine.

The Linux installer runs for real (real venv, real pip install of a snapshot of this checkout, real
`avatarcam` entry point making a real mp4) in a throw-away HOME. Two boundaries this machine cannot
cross: its kernel has no loadable-module support, so the v4l2loopback step can only be checked for its
warning; and `--use-current-python-packages` reuses this Python's torch and PySide6 instead of
downloading them again (the download itself is pip's business, not ours).

Tests run in file order: the first install is a module fixture; the uninstall test comes last.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALLERS = REPO / "installers"
LINUX = INSTALLERS / "linux" / "install.sh"
SHELL_SCRIPTS = [LINUX, INSTALLERS / "macos" / "install.sh", INSTALLERS / "setup.sh"]
POWERSHELL = INSTALLERS / "windows" / "install.ps1"
PACKAGE_PARTS = ("pyproject.toml", "README.md", "LICENSE", "avatarcam", "engine", "ui", "installers")
INSTALL_TIMEOUT_S = 600


# ------------------------------------------------------------------------------------------ lint

@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_script_is_shellcheck_clean(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    assert script.is_file(), f"missing {script}"
    result = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _powershell_errors(source: bytes) -> list[str]:
    """Syntax errors tree-sitter's PowerShell grammar finds (ERROR and MISSING nodes), as 'line:col text'."""
    import tree_sitter
    import tree_sitter_powershell

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    tree = parser.parse(source)
    errors, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            errors.append(f"{row + 1}:{col + 1} {source[node.start_byte:node.end_byte][:60]!r}")
        stack.extend(node.children)
    return sorted(errors)


def test_powershell_parser_reports_a_broken_script():
    """The parser check below means something: an unclosed block and a stray brace are caught."""
    pytest.importorskip("tree_sitter_powershell", reason="pip install tree-sitter tree-sitter-powershell")
    assert _powershell_errors(b"function Get-X {\n  if ($a -eq 1) {\n    Write-Host 'x'\n}\n") != []
    assert _powershell_errors(b"$x = @{ a = 1 }\nWrite-Host $x.a\n") == []


def test_windows_installer_parses_as_powershell():
    pytest.importorskip("tree_sitter_powershell", reason="pip install tree-sitter tree-sitter-powershell")
    assert POWERSHELL.is_file(), f"missing {POWERSHELL}"
    assert _powershell_errors(POWERSHELL.read_bytes()) == []


# ------------------------------------------------------------------------------------------ Linux installer

def _snapshot(dest: Path) -> Path:
    """Copy what the package is built from: a stable source while others edit the working tree."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in PACKAGE_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / part)
    return dest


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "VIRTUAL_ENV", "PYTHONPATH", "AVATARCAM_"))}
    env.update(HOME=str(home), PYTHONNOUSERSITE="1", AVATARCAM_TORCH_INDEX="")
    return env


def _host_safety_flags() -> list[str]:
    """A test must not change the host's kernel set-up: where modules could load, skip the camera step
    (on this machine's module-less kernel the step runs and must warn). Without root, apt would ask for
    a sudo password that nobody types."""
    flags = []
    if Path("/proc/modules").exists():
        flags.append("--no-camera")
    if os.geteuid() != 0:
        flags.append("--no-system-packages")
    return flags


class Install:
    """One throw-away HOME with the installer's paths in it."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        self.src = _snapshot(root / "src")
        self.venv = self.home / ".local/share/avatarcam/venv"
        self.link = self.home / ".local/bin/avatarcam"
        self.desktop = self.home / ".local/share/applications/avatarcam.desktop"
        self.autostart = self.home / ".config/autostart/avatarcam.desktop"
        self.env = _env(self.home)

    def run_installer(self, *args: str) -> subprocess.CompletedProcess:
        cmd = ["bash", str(self.src / "installers/linux/install.sh"), "--yes", "--use-current-python-packages",
               "--python", sys.executable, *_host_safety_flags(), *args]
        result = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=INSTALL_TIMEOUT_S)
        assert result.returncode == 0, f"installer failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        return result

    def avatarcam(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.link), *args], cwd=self.root, env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def venv_listing(self) -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(self.venv)): (p.lstat().st_mtime_ns, p.lstat().st_size)
                for p in sorted(self.venv.rglob("*"))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    inst = Install(tmp_path_factory.mktemp("install"))
    inst.first = inst.run_installer("--autostart")
    return inst


def test_installer_warns_that_this_kernel_cannot_load_v4l2loopback_and_carries_on(installed):
    if Path("/proc/modules").exists():
        pytest.skip("this kernel supports modules: the no-module warning does not apply")
    out = installed.first.stdout + installed.first.stderr
    assert "without loadable module support" in out
    assert "virtual camera (v4l2loopback) cannot work" in out
    assert "Recording" in out and "OBS control still work" in out
    assert "AvatarCam is installed." in installed.first.stdout


def test_installer_puts_an_entry_point_on_path_that_runs_from_the_venv(installed):
    assert installed.link.is_symlink()
    assert Path(os.readlink(installed.link)) == installed.venv / "bin/avatarcam"
    where = subprocess.run([str(installed.venv / "bin/python"), "-c", "import avatarcam, engine; "
                            "print(avatarcam.__file__); print(engine.__file__)"],
                           cwd=installed.root, env=installed.env, capture_output=True, text=True, timeout=60,
                           check=True)
    for line in where.stdout.split():
        assert Path(line).is_relative_to(installed.venv), f"imported from outside the venv: {line}"


def test_installer_writes_desktop_entry_and_autostart_pointing_at_the_venv(installed):
    for path in (installed.desktop, installed.autostart):
        text = path.read_text()
        assert f"Exec={installed.venv}/bin/avatarcam tray" in text
        assert "X-AvatarCam-Installer=" in text
    assert "X-GNOME-Autostart-enabled=true" in installed.autostart.read_text()
    if shutil.which("desktop-file-validate"):
        for path in (installed.desktop, installed.autostart):
            check = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr


def test_installer_ends_by_running_doctor(installed):
    out = installed.first.stdout
    assert "==> avatarcam doctor" in out
    doctor_part = out.split("==> avatarcam doctor", 1)[1]
    assert "torch" in doctor_part and "pyav" in doctor_part


def test_installed_doctor_runs(installed):
    result = installed.avatarcam("doctor", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "python" in result.stdout and ("All checks passed." in result.stdout or "failed." in result.stdout)


def test_installed_entry_point_records_the_bundled_demo_to_mp4(installed, tmp_path):
    import av

    demo = subprocess.run([str(installed.venv / "bin/python"), "-c",
                           "from avatarcam.data import DEMO_VOICE_WAV; print(DEMO_VOICE_WAV)"],
                          cwd=installed.root, env=installed.env, capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()
    assert Path(demo).is_relative_to(installed.venv) and Path(demo).is_file()
    out = tmp_path / "demo.mp4"
    args = ["run", "--audio", demo, "--out", str(out), "--duration", "2", "--no-camera", "-q"]
    if not (installed.src / "engine/models/toon/model.yaml").is_file():
        from fixtures_card import make_card
        args += ["--model", str(make_card(tmp_path / "card"))]
    result = installed.avatarcam(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 25, f"expected about 2 s of video, got {frames} frames"


def test_second_run_reports_everything_done_and_changes_nothing_in_the_venv(installed):
    before = installed.venv_listing()
    desktop_before = (installed.desktop.stat().st_mtime_ns, installed.autostart.stat().st_mtime_ns)
    again = installed.run_installer("--autostart")
    assert installed.venv_listing() == before
    assert (installed.desktop.stat().st_mtime_ns, installed.autostart.stat().st_mtime_ns) == desktop_before
    for step in ("environment exists", "torch", "is current", str(installed.link), "desktop entry",
                 "autostart at login"):
        assert any(line.strip().startswith("already done:") and step in line for line in again.stdout.splitlines()), \
            f"no 'already done' for {step!r}:\n{again.stdout}"
    install_part = again.stdout.split("==> avatarcam doctor", 1)[0]
    for change in ("running: pip", "created ", "wrote ", "linked ", "removed "):
        assert change not in install_part, f"the second run changed something ({change!r}):\n{install_part}"


def test_dry_run_changes_nothing(installed, tmp_path):
    listing = installed.venv_listing()
    result = installed.run_installer("--dry-run", "--reinstall")
    assert "would run: rm -rf" in result.stdout and "Dry run finished" in result.stdout
    assert installed.venv_listing() == listing


def test_dry_run_on_a_fresh_home_lists_the_steps_and_creates_nothing(tmp_path):
    fresh = Install(tmp_path)
    result = fresh.run_installer("--dry-run")
    assert "would run:" in result.stdout and "-m venv" in result.stdout
    assert "would install checkout" in result.stdout and "would write" in result.stdout
    assert sorted(p.name for p in fresh.home.rglob("*")) == []


def test_uninstall_removes_what_the_installer_added_and_keeps_user_data(installed):
    data = installed.home / ".local/share/avatarcam/avatars"
    data.mkdir(parents=True, exist_ok=True)
    (data / "keep.txt").write_text("user data")
    result = installed.run_installer("--uninstall")
    for path in (installed.venv, installed.link, installed.desktop, installed.autostart):
        assert not path.exists() and not path.is_symlink(), f"{path} is still there:\n{result.stdout}"
    assert (data / "keep.txt").read_text() == "user data"
    purged = installed.run_installer("--uninstall", "--purge")
    assert not (installed.home / ".local/share/avatarcam").exists(), purged.stdout
    assert not (installed.home / ".config/avatarcam").exists(), purged.stdout

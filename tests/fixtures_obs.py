"""Real OBS Studio (with its built-in obs-websocket 5 server) under a private Xvfb, for tests.

Why these details:
- obs-websocket 5.1 (OBS 29) reads its settings from ``global.ini`` section ``[OBSWebSocket]`` only;
  ``FirstRun=true`` keeps the auto-configuration wizard away. Each OBS gets a throw-away
  ``XDG_CONFIG_HOME`` so a user's real OBS profile is never touched.
- Every process is a ``Popen`` child that the fixture waits for (the VM's init does not reap orphans).
- OBS is stopped with SIGTERM (immediate, no config save); SIGINT sometimes segfaults or deadlocks
  OBS 29 after websocket use, so its exit code is never asserted.

Import the fixtures by name: ``from tests.fixtures_obs import obs_server, xvfb_display  # noqa: F401``.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ui.xvfb import start_xvfb, stop_process

# OBS's global.ini with {port} and {password}; tests/tools/start_obs.sh fills the same file
GLOBAL_INI_TEMPLATE = Path(__file__).resolve().parent / "data" / "obs-global.ini"


def require_obs() -> None:
    """Skip (with the reason) when the system packages for these fixtures are missing."""
    for exe, pkg in (("obs", "obs-studio"), ("Xvfb", "xvfb")):
        if shutil.which(exe) is None:
            pytest.skip(f"`{exe}` not installed (apt-get install {pkg})")
    pytest.importorskip("obswebsocket", reason="obs-websocket-py not installed (pip install obs-websocket-py==1.0)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class ObsServer:
    """One OBS instance: its config dir survives restarts, so a restart listens on the same port."""

    config_dir: Path
    display: str
    port: int
    password: str
    proc: subprocess.Popen | None = None
    start_s: float = 0.0  # seconds from Popen until the websocket port answered (last start)

    def write_config(self) -> None:
        ini = self.config_dir / "obs-studio" / "global.ini"
        ini.parent.mkdir(parents=True, exist_ok=True)
        template = GLOBAL_INI_TEMPLATE.read_text(encoding="utf-8")
        ini.write_text(template.replace("{port}", str(self.port)).replace("{password}", self.password))

    def start(self, timeout: float = 60.0) -> "ObsServer":
        if not (self.config_dir / "obs-studio" / "global.ini").exists():
            self.write_config()
        env = dict(os.environ, DISPLAY=self.display, XDG_CONFIG_HOME=str(self.config_dir),
                   LIBGL_ALWAYS_SOFTWARE="1")
        env.pop("PULSE_SERVER", None)  # no sound server needed; keeps OBS off other tests' daemons
        log = open(self.config_dir / "obs.log", "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["obs", "--multi", "--disable-missing-files-check", "--minimize-to-tray"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"OBS did not open port {self.port}:\n{tail}")
            time.sleep(0.05)
        self.start_s = time.monotonic() - t0
        return self

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM)
        self.proc = None

    def log_tail(self, n: int = 3000) -> str:
        path = self.config_dir / "obs.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def client(self, timeout: float = 10.0):
        """A plain obs-websocket-py client for arranging and checking OBS state in tests."""
        from obswebsocket import obsws
        ws = obsws("127.0.0.1", self.port, self.password, legacy=False, timeout=timeout)
        ws.connect()
        return ws


@pytest.fixture(scope="module")
def xvfb_display():
    require_obs()
    display, proc = start_xvfb("1280x720x24")
    yield display
    stop_process(proc)


@pytest.fixture(scope="module")
def obs_server(xvfb_display, tmp_path_factory):
    """One OBS shared by a test module (starting one costs about a second)."""
    server = ObsServer(tmp_path_factory.mktemp("obs-xdg"), xvfb_display, free_port(), "pw-Shared-7f3a91")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def obs_factory(xvfb_display, tmp_path_factory):
    """Make extra OBS instances (not started) that a test may kill and restart; all stopped after."""
    made: list[ObsServer] = []

    def make(password: str = "pw-Own-52c1e8", port: int | None = None) -> ObsServer:
        server = ObsServer(tmp_path_factory.mktemp("obs-xdg"), xvfb_display, port or free_port(), password)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()

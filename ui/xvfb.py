"""A private X display (Xvfb) for the screenshots and the tests, and stopping its child processes.

Why here: `ui.screenshots` needs it at run time and the tests need it too; tests may import `ui`,
never the other way round. Standard library only, so importing it does not load Qt.
"""
from __future__ import annotations

import os
import signal
import subprocess


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signal, wait, and SIGKILL if it does not go; never raises for a dead (or no) process.

    Always waits, so no zombie is left behind (a container's init may not reap orphans).
    """
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_xvfb(screen: str = "1280x800x24") -> tuple[str, subprocess.Popen]:
    """Start Xvfb on a free display (``-displayfd``: no guessing, no races); returns (":N", process)."""
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", screen, "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    buf = b""
    try:
        while not buf.endswith(b"\n"):
            chunk = os.read(r, 16)
            if not chunk:
                stop_process(proc)
                raise RuntimeError("Xvfb exited before reporting its display number")
            buf += chunk
    finally:
        os.close(r)
    return ":" + buf.decode().strip(), proc

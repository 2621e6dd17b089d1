"""What a caller may ask of the OBS worker and wait for: lists for the settings pickers, idle, connected.

Why apart: these run on the caller's thread and only hand jobs to the worker (`ObsController`),
which owns the connection; the waiting and asking is one role, the worker's reconciling another.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

from .errors import ObsError
from .obs_link import Failed, Link, obsreq


class ObsQueries:
    """Mixed into ObsController, which sets up `_lock`, `_jobs`, `_wake`, `_status`, `_asked`, `_done`, `cfg`."""

    _lock: threading.Condition
    _wake: threading.Event
    _jobs: list
    _status: str
    _asked: int
    _done: int

    def wait_idle(self, timeout: float) -> bool:
        """True once everything asked so far has been tried on a live OBS (failures are logged)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._asked
            while self._done < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._status != "connected":
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def list_scenes(self, timeout: float | None = None) -> list[str]:
        """Scene names in OBS's order (top first); ObsError when OBS is not connected."""
        def job(link: Link) -> list[str]:
            scenes = link.call(obsreq.GetSceneList()).datain.get("scenes", [])
            return [s["sceneName"] for s in sorted(scenes, key=lambda s: -s.get("sceneIndex", 0))]
        return self._query("GetSceneList", job, timeout)

    def list_inputs(self, timeout: float | None = None) -> list[tuple[str, str]]:
        """(input name, input kind) for every input."""
        def job(link: Link) -> list[tuple[str, str]]:
            inputs = link.call(obsreq.GetInputList()).datain.get("inputs", [])
            return [(i["inputName"], i["inputKind"]) for i in inputs]
        return self._query("GetInputList", job, timeout)

    def list_audio_inputs(self, timeout: float | None = None) -> list[str]:
        """Names of inputs that carry audio (they answer GetInputMute), for the mic picker."""
        def job(link: Link) -> list[str]:
            names = []
            for item in link.call(obsreq.GetInputList()).datain.get("inputs", []):
                try:
                    link.call(obsreq.GetInputMute(inputName=item["inputName"]))
                except Failed:  # 604: the input has no audio
                    continue
                names.append(item["inputName"])
            return names
        return self._query("GetInputList/GetInputMute", job, timeout)

    def _query(self, what: str, job: Callable[[Link], Any], timeout: float | None) -> Any:
        if self._status != "connected":
            raise ObsError(f"Cannot ask OBS for {what}: not connected ({self._status})")
        fut: Future = Future()
        with self._lock:
            self._jobs.append((job, fut))
        self._wake.set()
        try:
            return fut.result(timeout if timeout is not None else 2 * self.cfg.timeout_s + 1)
        except FutureTimeout:
            raise ObsError(f"OBS did not answer {what} in time; is OBS busy or frozen?") from None

"""OBS Studio control over obs-websocket v5: scene on start/stop and the mic's audio sync offset.

OBS is a side channel: the stream must never wait for it or die because of it. So every request
runs on one worker thread (public methods only record what is wanted and wake it), a lost or
missing OBS turns into a status string, a warning and retries with capped exponential backoff, and
the worker re-applies the wanted state whenever the connection comes back.

Split by role: the connection is ``obs_link.Link``; what the stream changes in OBS are parts with
an apply and a restore, each its own module: the scene and source (``obs_scene``), the mic's sync
offset (``obs_offset``) and the keyed camera source (``obs_keyed``). This module keeps the worker
that runs them.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError, ObsError
from .obs_keyed import KeyedFollower, KeyedSource
from .obs_link import Failed, Link, Lost, obsreq
from .obs_offset import MicOffset, offset_in_range
from .obs_queries import ObsQueries
from .obs_scene import SceneSwitch

log = logging.getLogger(__name__)

DEFAULT_PORT = 4455  # obs-websocket 5; obs-websocket-py's default 4444 silently selects protocol v4
_INSTALL_HINT = "OBS control needs obs-websocket-py: pip install 'obs-websocket-py==1.0'"


@dataclass
class ObsConfig:
    """Where OBS is and what to do to it while the avatar streams."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    password: str = field(default="", repr=False)
    scene: str | None = None        # program scene to switch to on start
    source: str | None = None       # scene item to show on start (in `scene`, else the current scene)
    mic_input: str | None = None    # OBS audio input whose sync offset follows our latency
    auto_sync_offset: bool = True
    timeout_s: float = 3.0          # per connect / request
    retry_max_s: float = 10.0       # backoff cap between reconnect attempts
    keyed: KeyedSource | None = None   # the avatar keyed over a scene (a green-screen avatar); None: off

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError(f"OBS host must be a host name or IP address, got {self.host!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ConfigError(f"OBS port must be an integer 1..65535 (OBS's default is {DEFAULT_PORT}), "
                              f"got {self.port!r}")
        if not isinstance(self.password, str):
            raise ConfigError("OBS password must be a string")
        if not self.timeout_s > 0 or not self.retry_max_s > 0:
            raise ConfigError(f"OBS timeout_s and retry_max_s must be > 0, got {self.timeout_s}, {self.retry_max_s}")



def test_connection(cfg: ObsConfig) -> tuple[bool, str]:
    """Try to log in once, for a UI "Test" button: (ok, a message to show the user)."""
    if obsreq is None:
        return False, _INSTALL_HINT
    link = Link(cfg)
    try:
        link.connect()
        version = link.call(obsreq.GetVersion())
        return True, (f"Connected to OBS {version.datain.get('obsVersion', '?')} "
                      f"(obs-websocket {version.datain.get('obsWebSocketVersion', '?')}) at {cfg.host}:{cfg.port}")
    except (Lost, Failed) as e:
        return False, str(e)
    except Exception as e:  # a garbled answer: still a message, never a crash of the settings dialog
        return False, f"unexpected answer from {cfg.host}:{cfg.port} ({type(e).__name__}); is it OBS?"
    finally:
        link.disconnect()


test_connection.__test__ = False  # keep pytest from collecting it when a test module imports it


def obs_lists(cfg: ObsConfig, timeout: float = 5.0) -> dict:
    """Scenes, inputs and audio inputs from a running OBS, for the settings page's pickers."""
    ctl = ObsController(cfg)
    ctl.connect()
    try:
        if not ctl.wait_connected(timeout):
            raise ObsError(f"Could not reach OBS at {cfg.host}:{cfg.port}: {ctl.status}")
        return {"scenes": ctl.list_scenes(), "inputs": [n for n, _ in ctl.list_inputs()],
                "audio": ctl.list_audio_inputs()}
    finally:
        ctl.close(timeout=2.0)


class ObsController(ObsQueries):
    """Keeps OBS in the state the stream wants, from one worker thread, surviving OBS restarts.

    ``on_status`` is called from the worker thread with the new status; a UI must hop to its own
    thread (e.g. a Qt signal) before touching widgets.
    """

    def __init__(self, cfg: ObsConfig, on_status: Callable[[str], None] | None = None):
        if obsreq is None:
            raise ObsError(_INSTALL_HINT)
        self.cfg = cfg
        self._on_status = on_status
        self._status = "disconnected"
        self._lock = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._jobs: list[tuple[Callable[[Link], Any], Future]] = []
        self._worker: threading.Thread | None = None
        # What the caller wants (under _lock); _asked counts requests, _done the last one fully tried.
        self._want_stream = False
        self._want_offset: int | None = None
        self._want_keyed: KeyedSource | None = cfg.keyed
        self._asked = 0
        self._done = 0
        # Worker-only: what OBS has, and what we must put back.
        self._link: Link | None = None
        self._serial = 0                       # increments on every successful connect
        self._shown_on: int | None = None      # serial on which the stream scene/source was applied
        self._offset_on: int | None = None
        self._scene = SceneSwitch(cfg.scene, cfg.source, self._warn)
        self._offset = MicOffset(cfg.mic_input, self._warn)
        self._keyed = KeyedFollower(self._warn)
        self.connect_attempts = 0

    # ----- public, thread-safe, non-blocking -----
    @property
    def status(self) -> str:
        """'disconnected' | 'connecting' | 'connected' | 'error: <what to do>'."""
        return self._status

    def connect(self) -> None:
        """Start the worker, which connects (and keeps reconnecting); returns at once."""
        if self._worker is not None and self._worker.is_alive():
            return
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="obs-controller", daemon=True)
        self._worker.start()

    def start_stream_scene(self) -> None:
        """Switch to the configured scene and/or show the source, remembering what to restore."""
        self._ask(want_stream=True)

    def restore(self) -> None:
        """Put back the scene, the source's visibility and the mic's sync offset from before start."""
        self._ask(want_stream=False, want_offset=None)

    def set_keyed(self, keyed: KeyedSource | None) -> None:
        """The avatar was switched mid-stream: key OBS's source on its colour, or take the source out
        (None: the new avatar is not keyed). Returns at once; the worker does it, as with everything here."""
        with self._lock:
            if keyed == self._want_keyed:
                return
        self._ask(want_keyed=keyed)

    def set_sync_offset_ms(self, ms: float) -> None:
        """Delay the mic input in OBS by our measured latency; repeated values cost nothing."""
        if not self.cfg.auto_sync_offset or not self.cfg.mic_input:
            return
        value = offset_in_range(ms)
        with self._lock:
            if value is None or value == self._want_offset:
                return
        self._ask(want_offset=value)

    def close(self, timeout: float = 3.0) -> None:
        """Best-effort restore, then stop the worker and disconnect; bounded by ``timeout``."""
        if self._worker is None:
            return
        self._ask(want_stream=False, want_offset=None)
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.warning("OBS worker did not stop within %.1f s; leaving it behind (daemon thread)", timeout)
        self._worker = None
        self._set_status("disconnected")

    def __enter__(self) -> "ObsController":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- plumbing shared by the public side and the worker -----
    def _ask(self, **wants: Any) -> None:
        with self._lock:
            if "want_stream" in wants:
                self._want_stream = wants["want_stream"]
            if "want_offset" in wants:
                self._want_offset = wants["want_offset"]
            if "want_keyed" in wants:
                self._want_keyed = wants["want_keyed"]
            self._asked += 1
        self._wake.set()

    def _set_status(self, status: str) -> None:
        with self._lock:
            if status == self._status:
                return
            self._status = status
            self._lock.notify_all()
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:
                log.exception("OBS status callback failed")

    # ----- worker thread -----
    def _run(self) -> None:
        delay, last_error = 0.5, None
        self._set_status("connecting")
        while not self._stop.is_set():
            if self._link is None:
                error = self._try_connect()
                if error is None:
                    delay, last_error = 0.5, None
                    continue
                if error != last_error:
                    log.warning("OBS: %s (retrying, at most every %g s)", error, self.cfg.retry_max_s)
                    last_error = error
                else:
                    log.debug("OBS: still unreachable, next try in %g s", delay)
                self._set_status(f"error: {error}")
                self._stop.wait(delay)
                delay = min(delay * 2, self.cfg.retry_max_s)
                continue
            self._wake.wait(1.0)
            self._wake.clear()
            if not self._service():
                self._drop("the connection to OBS was lost (OBS closed or crashed?)")
        self._shutdown()

    def _try_connect(self) -> str | None:
        self.connect_attempts += 1
        link = Link(self.cfg, on_lost=self._wake.set)
        try:
            link.connect()
            version = link.call(obsreq.GetVersion()).datain
        except (Lost, Failed) as e:
            link.disconnect()
            return str(e)
        except Exception as e:  # a garbled answer must not kill the worker
            link.disconnect()
            return f"unexpected answer from OBS at {self.cfg.host}:{self.cfg.port} ({type(e).__name__})"
        self._link = link
        self._serial += 1
        self._offset.applied = None
        self._wake.set()  # re-apply the wanted state at once
        log.info("Connected to OBS %s (obs-websocket %s) at %s:%d", version.get("obsVersion", "?"),
                 version.get("obsWebSocketVersion", "?"), self.cfg.host, self.cfg.port)
        self._set_status("connected")
        return None

    def _service(self) -> bool:
        """Reconcile OBS with what is wanted, then answer queued queries; False if the link died."""
        link = self._link
        with self._lock:
            jobs, self._jobs = self._jobs, []
        try:
            try:
                self._reconcile(link)
            except Lost:
                raise
            except Exception:  # an unexpected answer must not kill the worker; the stream goes on
                log.exception("OBS: unexpected error while updating OBS")
                with self._lock:
                    self._done = self._asked
                    self._lock.notify_all()
            while jobs:
                job, fut = jobs[0]
                try:
                    fut.set_result(job(link))
                except Failed as e:
                    fut.set_exception(ObsError(f"{e}: check the name in OBS"))
                except Lost:
                    raise
                except Exception as e:  # a bug or an unexpected answer: report it to the asker
                    fut.set_exception(e)
                jobs.pop(0)
        except Lost as e:
            log.debug("OBS link lost while working: %s", e)
            for _, fut in jobs:
                fut.set_exception(ObsError(f"OBS query not answered: {e}"))
            return False
        return not link.lost.is_set()

    def _reconcile(self, link: Link) -> None:
        with self._lock:
            asked, want_stream, want_offset = self._asked, self._want_stream, self._want_offset
            want_keyed = self._want_keyed
        if want_stream and self._shown_on != self._serial:
            self._shown_on = self._serial
            self._scene.show(link)
            self._keyed.follow(link, want_keyed, fresh=True)
        elif want_stream:
            self._keyed.follow(link, want_keyed, fresh=False)
        elif not want_stream and self._scene.shown:
            self._shown_on = None
            self._scene.hide(link)
            self._keyed.take_out(link)
        if want_offset is not None and (self._offset_on != self._serial or self._offset.applied != want_offset):
            self._offset_on = self._serial
            self._offset.apply(link, want_offset)
        elif want_offset is None and self._offset.saved is not None:
            self._offset_on = None
            self._offset.put_back(link)
        with self._lock:
            self._done = max(self._done, asked)
            self._lock.notify_all()

    def _warn(self, e: Failed, what_to_do: str) -> None:
        log.warning("%s. %s", e, what_to_do)

    def _drop(self, reason: str) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.disconnect()
        self._fail_jobs(reason)
        if not self._stop.is_set():
            log.warning("OBS: %s; reconnecting", reason)
            self._set_status("connecting")

    def _fail_jobs(self, reason: str) -> None:
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for _, fut in jobs:
            fut.set_exception(ObsError(f"OBS query not answered: {reason}"))

    def _shutdown(self) -> None:
        if self._link is not None and not self._link.lost.is_set():
            try:
                self._reconcile(self._link)  # close() asked for a restore
            except Lost:
                pass
        link, self._link = self._link, None
        if link is not None:
            link.disconnect()
        self._fail_jobs("the OBS controller was closed")

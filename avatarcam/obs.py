"""OBS Studio control over obs-websocket v5: scene on start/stop and the mic's audio sync offset.

OBS is a side channel: the stream must never wait for it or die because of it. So every request
runs on one worker thread (public methods only record what is wanted and wake it), a lost or
missing OBS turns into a status string, a warning and retries with capped exponential backoff, and
the worker re-applies the wanted state whenever the connection comes back.

obs-websocket-py 1.0 supplies the request classes and the connection object, but its own connect
has no timeout, its receive thread crashes on a reset socket and it drops the error comment of a
failed request; ``_Link`` replaces those three parts. The password only ever feeds the v5
challenge hash: it is not in any log line, status, error or repr.
"""
from __future__ import annotations

import json
import logging
import math
import socket
import struct
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError, ObsError

try:  # the optional 'app' extra; checked when a controller is built
    import websocket
    from obswebsocket import obsws as _ObsWs
    from obswebsocket import requests as obsreq
except ImportError:  # pragma: no cover - exercised only without the extra
    websocket = None
    _ObsWs = object
    obsreq = None

log = logging.getLogger(__name__)

DEFAULT_PORT = 4455  # obs-websocket 5; obs-websocket-py's default 4444 silently selects protocol v4
SYNC_OFFSET_RANGE_MS = (-950, 20000)  # what SetInputAudioSyncOffset accepts
_CLOSE_AUTH_FAILED = 4009
_CLOSE_RPC_UNSUPPORTED = 4010
_SETTINGS_HINT = "OBS → Tools → WebSocket Server Settings"
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


class _Lost(Exception):
    """The connection is gone (or never came up); the message is written for the user."""


class _Failed(Exception):
    """OBS answered a request with a failure status."""

    def __init__(self, request: str, code: int, comment: str):
        super().__init__(f"OBS request {request} failed (code {code}): {comment or 'no reason given'}")
        self.request, self.code, self.comment = request, code, comment


def _auth_failed_message(cfg: ObsConfig) -> str:
    if not cfg.password:
        return (f"OBS asks for a password but none is set: copy it from {_SETTINGS_HINT} → "
                "Show Connect Info into AvatarCam's OBS settings")
    return f"OBS rejected the password: copy it again from {_SETTINGS_HINT} → Show Connect Info"


class _Link(_ObsWs):
    """One obs-websocket v5 connection: timeouts everywhere, failures as exceptions, clean drop."""

    def __init__(self, cfg: ObsConfig, on_lost: Callable[[], None] = lambda: None):
        super().__init__(cfg.host, cfg.port, cfg.password, legacy=False, timeout=cfg.timeout_s)
        self.cfg = cfg
        self.lost = threading.Event()
        self._on_lost = on_lost
        self._closing = False
        self._id_lock = threading.Lock()

    def connect(self) -> None:
        cfg, where = self.cfg, f"{self.cfg.host}:{self.cfg.port}"
        self.ws = websocket.WebSocket()
        try:
            self.ws.connect(f"ws://{where}", timeout=cfg.timeout_s)
            self._identify()
        except _Lost:
            self.ws.shutdown()
            raise
        except ConnectionRefusedError:
            self.ws.shutdown()
            raise _Lost(f"OBS is not running, or its WebSocket server is off (nothing answers at {where}): "
                        f"start OBS and tick {_SETTINGS_HINT} → Enable WebSocket server (port {cfg.port})") from None
        except socket.gaierror as e:
            self.ws.shutdown()
            raise _Lost(f"cannot resolve the OBS host {cfg.host!r} ({e.strerror}): check the host setting") from None
        except (socket.timeout, websocket.WebSocketTimeoutException):
            self.ws.shutdown()
            raise _Lost(f"no answer from {where} within {cfg.timeout_s:g} s: check host/port "
                        f"(OBS shows its port in {_SETTINGS_HINT}) and any firewall") from None
        except (websocket.WebSocketBadStatusException, websocket.WebSocketProtocolException, ValueError) as e:
            self.ws.shutdown()
            raise _Lost(f"{where} answered but is not an obs-websocket 5 server ({type(e).__name__}): "
                        f"check the port in {_SETTINGS_HINT}") from None
        except (OSError, websocket.WebSocketException) as e:
            self.ws.shutdown()
            raise _Lost(f"cannot connect to OBS at {where}: {e or type(e).__name__}") from None
        self.ws.settimeout(None)  # the receiver blocks; call() has its own timeout
        self.thread_recv = threading.Thread(target=self._receive, name="obs-websocket-recv", daemon=True)
        self.thread_recv.start()

    def _identify(self) -> None:
        """v5 handshake (Hello → Identify → Identified) with a real reason when OBS refuses."""
        hello = json.loads(self.ws.recv() or "{}")
        if hello.get("op") != 0:
            raise _Lost(f"{self.cfg.host}:{self.cfg.port} does not speak obs-websocket 5 (old 4.x plugin?): "
                        "AvatarCam needs OBS 28 or newer with its built-in WebSocket server")
        self.server_version = hello["d"].get("obsWebSocketVersion")
        challenge = hello["d"].get("authentication")
        auth = self._build_auth_string(challenge["salt"], challenge["challenge"]) if challenge else ""
        if challenge and not self.password:
            raise _Lost(_auth_failed_message(self.cfg))
        identify = {"op": 1, "d": {"rpcVersion": 1, "eventSubscriptions": 0}}
        if auth:
            identify["d"]["authentication"] = auth
        self.ws.send(json.dumps(identify))
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 0
            if code == _CLOSE_AUTH_FAILED:
                raise _Lost(_auth_failed_message(self.cfg))
            if code == _CLOSE_RPC_UNSUPPORTED:
                raise _Lost("this OBS speaks another obs-websocket RPC version; "
                            "AvatarCam needs RPC 1 (obs-websocket 5.x)")
            raise _Lost(f"OBS closed the connection during login (code {code}: {data[2:].decode(errors='replace')})")
        if json.loads(data).get("op") != 2:
            raise _Lost("OBS did not confirm the login (no Identified message)")

    def _receive(self) -> None:
        """Route responses to waiting calls; events (none subscribed) go to obs-websocket-py's manager."""
        ws = self.ws
        try:
            while not self._closing:
                message = ws.recv()
                if not message:  # a close frame
                    break
                msg = json.loads(message)
                if msg.get("op") == 7:
                    rid = msg["d"].get("requestId")
                    waiter = self.events.get(rid)
                    if waiter is not None:
                        self.answers[rid] = msg["d"]
                        waiter.set()
                elif msg.get("op") == 5:
                    try:  # a callback must not call OBS (it would block this thread): hand work to a queue
                        self.eventmanager.trigger(self.build_event(msg["d"]))
                    except Exception:
                        log.exception("OBS event handler failed")
        except (OSError, ValueError, websocket.WebSocketException) as e:
            if not self._closing:
                log.debug("OBS receive loop ended: %s", type(e).__name__)
        finally:
            self.lost.set()
            for waiter in list(self.events.values()):
                waiter.set()
            if not self._closing:
                self._on_lost()

    def build_event(self, data: dict) -> Any:
        from obswebsocket import events
        event = getattr(events, data["eventType"])()
        event.input(data.get("eventData", {}))
        return event

    def call(self, req: Any) -> Any:
        """Send one request and wait for its answer; raises _Failed on a failure status, _Lost on no link."""
        if self.lost.is_set():
            raise _Lost("the connection to OBS was lost")
        with self._id_lock:
            rid = str(self.id)
            self.id += 1
        waiter = threading.Event()
        self.events[rid] = waiter
        try:
            payload = {"op": 6, "d": {"requestId": rid, "requestType": req.name, "requestData": req.data()}}
            try:
                self.ws.send(json.dumps(payload))
            except (OSError, websocket.WebSocketException):
                self._drop_socket()
                raise _Lost("the connection to OBS was lost") from None
            answered = waiter.wait(self.timeout)
            answer = self.answers.pop(rid, None)
        finally:
            self.events.pop(rid, None)
        if answer is None:
            if answered or self.lost.is_set():
                raise _Lost("the connection to OBS was lost")
            self._drop_socket()  # a hung OBS: treat as lost so the worker reconnects
            raise _Lost(f"OBS did not answer {req.name} within {self.timeout:g} s")
        status = answer.get("requestStatus", {})
        req.input(answer.get("responseData") or {}, bool(status.get("result")))
        if not req.status:
            raise _Failed(req.name, int(status.get("code", 0)), str(status.get("comment", "")))
        return req

    def _drop_socket(self) -> None:
        try:
            self.ws.abort()  # wakes the receiver, which then marks the link lost
        except Exception:  # best effort on a socket that is already gone
            pass

    def disconnect(self, timeout: float = 1.0) -> None:
        """Close politely if possible, never raise, never wait more than ``timeout``."""
        self._closing = True
        if self.ws is None:
            return
        try:
            if self.ws.connected:
                self.ws.send_close()
        except Exception:
            pass
        self._drop_socket()
        if self.thread_recv is not None and self.thread_recv is not threading.current_thread():
            self.thread_recv.join(timeout)
        self.ws.shutdown()
        self.lost.set()


def test_connection(cfg: ObsConfig) -> tuple[bool, str]:
    """Try to log in once, for a UI "Test" button: (ok, a message to show the user)."""
    if obsreq is None:
        return False, _INSTALL_HINT
    link = _Link(cfg)
    try:
        link.connect()
        version = link.call(obsreq.GetVersion())
        return True, (f"Connected to OBS {version.datain.get('obsVersion', '?')} "
                      f"(obs-websocket {version.datain.get('obsWebSocketVersion', '?')}) at {cfg.host}:{cfg.port}")
    except (_Lost, _Failed) as e:
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


class ObsController:
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
        self._jobs: list[tuple[Callable[[_Link], Any], Future]] = []
        self._worker: threading.Thread | None = None
        # What the caller wants (under _lock); _asked counts requests, _done the last one fully tried.
        self._want_stream = False
        self._want_offset: int | None = None
        self._asked = 0
        self._done = 0
        # Worker-only: what OBS has, and what we must put back.
        self._link: _Link | None = None
        self._serial = 0                       # increments on every successful connect
        self._shown_on: int | None = None      # serial on which the stream scene/source was applied
        self._shown = False
        self._saved_scene: str | None = None
        self._saved_item: tuple[str, int, bool] | None = None
        self._offset_on: int | None = None
        self._applied_offset: int | None = None
        self._saved_offset: int | None = None
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

    def set_sync_offset_ms(self, ms: float) -> None:
        """Delay the mic input in OBS by our measured latency; repeated values cost nothing."""
        if not self.cfg.auto_sync_offset or not self.cfg.mic_input:
            return
        if not math.isfinite(ms):
            log.warning("OBS sync offset %r ms is not a number; ignored", ms)
            return
        lo, hi = SYNC_OFFSET_RANGE_MS
        value = int(round(ms))
        if not lo <= value <= hi:
            log.warning("OBS sync offset %d ms is outside OBS's range %d..%d ms; using the nearest end", value, lo, hi)
            value = min(max(value, lo), hi)
        with self._lock:
            if value == self._want_offset:
                return
        self._ask(want_offset=value)

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
        def job(link: _Link) -> list[str]:
            scenes = link.call(obsreq.GetSceneList()).datain.get("scenes", [])
            return [s["sceneName"] for s in sorted(scenes, key=lambda s: -s.get("sceneIndex", 0))]
        return self._query("GetSceneList", job, timeout)

    def list_inputs(self, timeout: float | None = None) -> list[tuple[str, str]]:
        """(input name, input kind) for every input."""
        def job(link: _Link) -> list[tuple[str, str]]:
            inputs = link.call(obsreq.GetInputList()).datain.get("inputs", [])
            return [(i["inputName"], i["inputKind"]) for i in inputs]
        return self._query("GetInputList", job, timeout)

    def list_audio_inputs(self, timeout: float | None = None) -> list[str]:
        """Names of inputs that carry audio (they answer GetInputMute), for the mic picker."""
        def job(link: _Link) -> list[str]:
            names = []
            for item in link.call(obsreq.GetInputList()).datain.get("inputs", []):
                try:
                    link.call(obsreq.GetInputMute(inputName=item["inputName"]))
                except _Failed:  # 604: the input has no audio
                    continue
                names.append(item["inputName"])
            return names
        return self._query("GetInputList/GetInputMute", job, timeout)

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
            self._asked += 1
        self._wake.set()

    def _query(self, what: str, job: Callable[[_Link], Any], timeout: float | None) -> Any:
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
        link = _Link(self.cfg, on_lost=self._wake.set)
        try:
            link.connect()
            version = link.call(obsreq.GetVersion()).datain
        except (_Lost, _Failed) as e:
            link.disconnect()
            return str(e)
        except Exception as e:  # a garbled answer must not kill the worker
            link.disconnect()
            return f"unexpected answer from OBS at {self.cfg.host}:{self.cfg.port} ({type(e).__name__})"
        self._link = link
        self._serial += 1
        self._applied_offset = None
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
            except _Lost:
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
                except _Failed as e:
                    fut.set_exception(ObsError(f"{e}: check the name in OBS"))
                except _Lost:
                    raise
                except Exception as e:  # a bug or an unexpected answer: report it to the asker
                    fut.set_exception(e)
                jobs.pop(0)
        except _Lost as e:
            log.debug("OBS link lost while working: %s", e)
            for _, fut in jobs:
                fut.set_exception(ObsError(f"OBS query not answered: {e}"))
            return False
        return not link.lost.is_set()

    def _reconcile(self, link: _Link) -> None:
        with self._lock:
            asked, want_stream, want_offset = self._asked, self._want_stream, self._want_offset
        if want_stream and self._shown_on != self._serial:
            self._show(link)
        elif not want_stream and self._shown:
            self._hide(link)
        if want_offset is not None and (self._offset_on != self._serial or self._applied_offset != want_offset):
            self._apply_offset(link, want_offset)
        elif want_offset is None and self._saved_offset is not None:
            self._put_back_offset(link)
        with self._lock:
            self._done = max(self._done, asked)
            self._lock.notify_all()

    def _warn(self, e: _Failed, what_to_do: str) -> None:
        log.warning("%s. %s", e, what_to_do)

    def _show(self, link: _Link) -> None:
        cfg, first = self.cfg, not self._shown
        self._shown, self._shown_on = True, self._serial
        current = link.call(obsreq.GetCurrentProgramScene()).datain.get("currentProgramSceneName")
        if first:
            self._saved_scene = current
        if cfg.source:
            scene = cfg.scene or current
            try:
                item = link.call(obsreq.GetSceneItemId(sceneName=scene, sourceName=cfg.source)).datain["sceneItemId"]
                was = link.call(obsreq.GetSceneItemEnabled(sceneName=scene, sceneItemId=item)
                                ).datain["sceneItemEnabled"]
                if first:
                    self._saved_item = (scene, item, bool(was))
                link.call(obsreq.SetSceneItemEnabled(sceneName=scene, sceneItemId=item, sceneItemEnabled=True))
            except _Failed as e:
                self._warn(e, f"Add the source {cfg.source!r} to the OBS scene {scene!r}, "
                              "or clear the source in AvatarCam's OBS settings")
        if cfg.scene and cfg.scene != current:
            try:
                link.call(obsreq.SetCurrentProgramScene(sceneName=cfg.scene))
                log.info("OBS: switched to scene %r (was %r)", cfg.scene, current)
            except _Failed as e:
                self._warn(e, f"Create the scene {cfg.scene!r} in OBS "
                              "or pick an existing one in AvatarCam's OBS settings")

    def _hide(self, link: _Link) -> None:
        scene, item = self._saved_scene, self._saved_item
        self._shown, self._shown_on, self._saved_scene, self._saved_item = False, None, None, None
        if self.cfg.scene and scene and scene != self.cfg.scene:
            try:
                link.call(obsreq.SetCurrentProgramScene(sceneName=scene))
                log.info("OBS: restored scene %r", scene)
            except _Failed as e:
                self._warn(e, f"The scene {scene!r} from before the stream is gone; pick a scene in OBS by hand")
        if item is not None and not item[2]:
            try:
                link.call(obsreq.SetSceneItemEnabled(sceneName=item[0], sceneItemId=item[1], sceneItemEnabled=False))
            except _Failed as e:
                self._warn(e, f"Hide {self.cfg.source!r} in OBS by hand")

    def _apply_offset(self, link: _Link, ms: int) -> None:
        name = self.cfg.mic_input
        self._offset_on, self._applied_offset = self._serial, ms
        try:
            if self._saved_offset is None:
                self._saved_offset = int(link.call(obsreq.GetInputAudioSyncOffset(inputName=name))
                                         .datain["inputAudioSyncOffset"])
            link.call(obsreq.SetInputAudioSyncOffset(inputName=name, inputAudioSyncOffset=ms))
            log.debug("OBS: %r sync offset = %d ms", name, ms)
        except _Failed as e:
            self._warn(e, f"Pick an OBS input with audio (a microphone) as the mic input instead of {name!r}")

    def _put_back_offset(self, link: _Link) -> None:
        saved, self._saved_offset = self._saved_offset, None
        self._offset_on, self._applied_offset = None, None
        try:
            link.call(obsreq.SetInputAudioSyncOffset(inputName=self.cfg.mic_input, inputAudioSyncOffset=saved))
        except _Failed as e:
            self._warn(e, f"Reset the sync offset of {self.cfg.mic_input!r} by hand (Advanced Audio Properties)")

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
            except _Lost:
                pass
        link, self._link = self._link, None
        if link is not None:
            link.disconnect()
        self._fail_jobs("the OBS controller was closed")

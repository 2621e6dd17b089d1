"""One obs-websocket v5 connection with timeouts everywhere and failures as exceptions.

obs-websocket-py 1.0 supplies the request classes and the connection object, but its own connect
has no timeout, its receive thread crashes on a reset socket and it drops the error comment of a
failed request; ``Link`` replaces those three parts. The password only ever feeds the v5
challenge hash: it is not in any log line, status, error or repr.
"""
from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from typing import Any, Callable

try:  # the optional 'app' extra; checked when a controller is built
    import websocket
    from obswebsocket import obsws as _ObsWs
    from obswebsocket import requests as obsreq
except ImportError:  # pragma: no cover - exercised only without the extra
    websocket = None
    _ObsWs = object
    obsreq = None


log = logging.getLogger(__name__)

_CLOSE_AUTH_FAILED = 4009
_CLOSE_RPC_UNSUPPORTED = 4010
SETTINGS_HINT = "OBS → Tools → WebSocket Server Settings"


class Lost(Exception):
    """The connection is gone (or never came up); the message is written for the user."""


class Failed(Exception):
    """OBS answered a request with a failure status."""

    def __init__(self, request: str, code: int, comment: str):
        super().__init__(f"OBS request {request} failed (code {code}): {comment or 'no reason given'}")
        self.request, self.code, self.comment = request, code, comment


def _auth_failed_message(cfg) -> str:
    if not cfg.password:
        return (f"OBS asks for a password but none is set: copy it from {SETTINGS_HINT} → "
                "Show Connect Info into AvatarCam's OBS settings")
    return f"OBS rejected the password: copy it again from {SETTINGS_HINT} → Show Connect Info"


class Link(_ObsWs):
    """One obs-websocket v5 connection: timeouts everywhere, failures as exceptions, clean drop."""

    def __init__(self, cfg, on_lost: Callable[[], None] = lambda: None):
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
        except Lost:
            self.ws.shutdown()
            raise
        except ConnectionRefusedError:
            self.ws.shutdown()
            raise Lost(f"OBS is not running, or its WebSocket server is off (nothing answers at {where}): "
                        f"start OBS and tick {SETTINGS_HINT} → Enable WebSocket server (port {cfg.port})") from None
        except socket.gaierror as e:
            self.ws.shutdown()
            raise Lost(f"cannot resolve the OBS host {cfg.host!r} ({e.strerror}): check the host setting") from None
        except (socket.timeout, websocket.WebSocketTimeoutException):
            self.ws.shutdown()
            raise Lost(f"no answer from {where} within {cfg.timeout_s:g} s: check host/port "
                        f"(OBS shows its port in {SETTINGS_HINT}) and any firewall") from None
        except (websocket.WebSocketBadStatusException, websocket.WebSocketProtocolException, ValueError) as e:
            self.ws.shutdown()
            raise Lost(f"{where} answered but is not an obs-websocket 5 server ({type(e).__name__}): "
                        f"check the port in {SETTINGS_HINT}") from None
        except (OSError, websocket.WebSocketException) as e:
            self.ws.shutdown()
            raise Lost(f"cannot connect to OBS at {where}: {e or type(e).__name__}") from None
        self.ws.settimeout(None)  # the receiver blocks; call() has its own timeout
        self.thread_recv = threading.Thread(target=self._receive, name="obs-websocket-recv", daemon=True)
        self.thread_recv.start()

    def _identify(self) -> None:
        """v5 handshake (Hello → Identify → Identified) with a real reason when OBS refuses."""
        hello = json.loads(self.ws.recv() or "{}")
        if hello.get("op") != 0:
            raise Lost(f"{self.cfg.host}:{self.cfg.port} does not speak obs-websocket 5 (old 4.x plugin?): "
                        "AvatarCam needs OBS 28 or newer with its built-in WebSocket server")
        self.server_version = hello["d"].get("obsWebSocketVersion")
        challenge = hello["d"].get("authentication")
        auth = self._build_auth_string(challenge["salt"], challenge["challenge"]) if challenge else ""
        if challenge and not self.password:
            raise Lost(_auth_failed_message(self.cfg))
        identify = {"op": 1, "d": {"rpcVersion": 1, "eventSubscriptions": 0}}
        if auth:
            identify["d"]["authentication"] = auth
        self.ws.send(json.dumps(identify))
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 0
            if code == _CLOSE_AUTH_FAILED:
                raise Lost(_auth_failed_message(self.cfg))
            if code == _CLOSE_RPC_UNSUPPORTED:
                raise Lost("this OBS speaks another obs-websocket RPC version; "
                            "AvatarCam needs RPC 1 (obs-websocket 5.x)")
            raise Lost(f"OBS closed the connection during login (code {code}: {data[2:].decode(errors='replace')})")
        if json.loads(data).get("op") != 2:
            raise Lost("OBS did not confirm the login (no Identified message)")

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
        """Send one request and wait for its answer; raises Failed on a failure status, Lost on no link."""
        if self.lost.is_set():
            raise Lost("the connection to OBS was lost")
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
                raise Lost("the connection to OBS was lost") from None
            answered = waiter.wait(self.timeout)
            answer = self.answers.pop(rid, None)
        finally:
            self.events.pop(rid, None)
        if answer is None:
            if answered or self.lost.is_set():
                raise Lost("the connection to OBS was lost")
            self._drop_socket()  # a hung OBS: treat as lost so the worker reconnects
            raise Lost(f"OBS did not answer {req.name} within {self.timeout:g} s")
        status = answer.get("requestStatus", {})
        req.input(answer.get("responseData") or {}, bool(status.get("result")))
        if not req.status:
            raise Failed(req.name, int(status.get("code", 0)), str(status.get("comment", "")))
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

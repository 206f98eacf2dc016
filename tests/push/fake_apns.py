"""A fake APNs provider API that speaks only HTTP/2 (h2c, prior knowledge) on loopback.

Built on the ``h2`` library's server-side ``H2Connection`` over a plain TCP socket, one
thread per connection: an HTTP/1.1 client gets a protocol error and a closed
connection, so a notification that reaches ``received`` proves the client spoke
HTTP/2.  It keeps the `FakeGateway` interface (``url``, ``handle``, ``script``,
``received``, ``with`` support) but not its HTTP/1.1 server, so not ``stall`` either:
``delay_s`` makes it answer late instead.

It checks what APNs checks and answers with APNs' status codes and JSON reasons:

- ``:method`` POST (405 MethodNotAllowed), ``:path`` ``/3/device/<hex>`` (404 BadPath,
  400 MissingDeviceToken, 400 BadDeviceToken);
- ``authorization: bearer <JWT>``: missing -> 403 MissingProviderToken; header ``alg``
  ES256 and ``kid`` = key_id, ``iss`` = team_id, signature checked with the public key
  -> else 403 InvalidProviderToken; ``iat`` older than one hour by ``clock`` -> 403
  ExpiredProviderToken;
- ``apns-topic`` (400 MissingTopic; another app's topic 400 DeviceTokenNotForTopic),
  ``apns-push-type`` (400 InvalidPushType), ``apns-priority`` 1/5/10 (400 BadPriority),
  ``apns-expiration`` an integer (400 BadExpirationDate), ``apns-collapse-id`` <= 64
  bytes (400 BadCollapseId);
- the body: empty -> 400 PayloadEmpty, over 4096 bytes -> 413 PayloadTooLarge; a JSON
  object with ``aps.alert`` {title, body} strings, else 400 ``BadPayload`` (a fake-only
  reason: APNs documents none for a malformed payload; it marks a client bug here).

Device tokens in ``unregistered`` get 410 Unregistered with a ``timestamp``.  Success:
200, empty body, an ``apns-id`` header (the request's own ``apns-id`` when it sent one).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import jwt

from tests.push.fakegateway import Answer, FakeGateway, Request

MAX_PAYLOAD_BYTES = 4096
PUSH_TYPES = ("alert", "background", "location", "voip", "complication", "fileprovider", "mdm",
              "liveactivity", "pushtotalk")


def reason(status: int, why: str, headers: dict[str, str] | None = None, **extra: Any) -> Answer:
    """An APNs error answer: ``{"reason": why}`` with the status."""
    return Answer(status, {"reason": why, **extra}, headers or {})


def unregistered(timestamp_ms: int = 1_700_000_000_000) -> Answer:
    """410: the token is no longer active for the topic (``timestamp`` in ms)."""
    return reason(410, "Unregistered", timestamp=timestamp_ms)


def bad_device_token() -> Answer:
    return reason(400, "BadDeviceToken")


def device_token_not_for_topic() -> Answer:
    return reason(400, "DeviceTokenNotForTopic")


def expired_provider_token() -> Answer:
    return reason(403, "ExpiredProviderToken")


def invalid_provider_token() -> Answer:
    return reason(403, "InvalidProviderToken")


def too_many_requests(retry_after_s: int | None = None) -> Answer:
    headers = {"retry-after": str(retry_after_s)} if retry_after_s is not None else {}
    return reason(429, "TooManyRequests", headers)


def server_error(status: int = 500, retry_after_s: int | None = None) -> Answer:
    why = {500: "InternalServerError", 503: "ServiceUnavailable"}.get(status, "InternalServerError")
    headers = {"retry-after": str(retry_after_s)} if retry_after_s is not None else {}
    return reason(status, why, headers)


class FakeApns(FakeGateway):
    """See the module docstring."""

    def __init__(self, public_key: Any, *, team_id: str = "TEAM123456", key_id: str = "KEY1234567",
                 topic: str = "com.example.tracker", clock: Callable[[], float] = time.time) -> None:
        # The base class's HTTP/1.1 server is deliberately not built: APNs is h2-only.
        self.received: list[Request] = []
        self.script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self.public_key = public_key
        self.team_id = team_id
        self.key_id = key_id
        self.topic = topic
        self.clock = clock
        self.unregistered: set[str] = set()
        self.delay_s = 0.0                      # > 0: answer this late (client timeouts)
        self.connections = 0                    # HTTP/2 connections accepted
        self.protocol_errors = 0                # connections dropped for not speaking h2
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeApns:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(2)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    # -- the HTTP/2 server -------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            with self._lock:
                self._sockets.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                    header_encoding="utf-8"))
        conn.initiate_connection()
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        counted = False
        try:
            sock.sendall(conn.data_to_send())
            while not self._stopping.is_set():
                data = sock.recv(65536)
                if not data:
                    return
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    with self._lock:
                        self.protocol_errors += 1
                    sock.sendall(conn.data_to_send())
                    return
                if not counted:
                    counted = True
                    with self._lock:
                        self.connections += 1
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = ({k.lower(): v for k, v in event.headers}, bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data)
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        self._respond(conn, event.stream_id, headers, bytes(body))
                sock.sendall(conn.data_to_send())
        except OSError:
            return
        finally:
            sock.close()

    def _respond(self, conn: h2.connection.H2Connection, stream_id: int, headers: dict[str, str],
                 body: bytes) -> None:
        request = Request(headers.get(":method", ""), headers.get(":path", ""), headers, body)
        with self._lock:
            self.received.append(request)
            scripted = self.script.popleft() if self.script else None
        answer = scripted or self.handle(request)
        if self.delay_s:
            self._stopping.wait(self.delay_s)
        payload = answer.body
        if isinstance(payload, dict | list):
            payload = json.dumps(payload).encode()
        else:
            payload = payload.encode() if isinstance(payload, str) else (payload or b"")
        apns_id = headers.get("apns-id") or str(uuid.uuid4()).upper()
        response = [(":status", str(answer.status)), ("apns-id", apns_id)]
        if payload:
            response += [("content-type", "application/json"), ("content-length", str(len(payload)))]
        response += [(name.lower(), value) for name, value in answer.headers.items()]
        conn.send_headers(stream_id, response, end_stream=not payload)
        if payload:
            conn.send_data(stream_id, payload, end_stream=True)

    # -- what APNs checks ----------------------------------------------------------------

    def handle(self, request: Request) -> Answer:
        if request.method != "POST":
            return reason(405, "MethodNotAllowed")
        match = re.fullmatch(r"/3/device/([^/?]*)", request.path)
        if match is None:
            return reason(404, "BadPath")
        token = match.group(1)
        if not token:
            return reason(400, "MissingDeviceToken")
        if not re.fullmatch(r"[0-9a-fA-F]+", token):
            return bad_device_token()
        refused = self._check_auth(request.headers.get("authorization"))
        if refused is not None:
            return refused
        refused = self._check_headers(request.headers)
        if refused is not None:
            return refused
        refused = self._check_payload(request.body)
        if refused is not None:
            return refused
        if token in self.unregistered:
            return unregistered(int(self.clock() * 1000))
        return Answer(200)

    def _check_auth(self, authorization: str | None) -> Answer | None:
        if not authorization or not authorization.startswith("bearer "):
            return reason(403, "MissingProviderToken")
        token = authorization[len("bearer "):]
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.public_key, algorithms=["ES256"],
                                options={"verify_exp": False, "verify_iat": False, "require": ["iat"]})
        except jwt.PyJWTError:
            return invalid_provider_token()
        if header.get("alg") != "ES256" or header.get("kid") != self.key_id:
            return invalid_provider_token()
        if claims.get("iss") != self.team_id or not isinstance(claims.get("iat"), int):
            return invalid_provider_token()
        if self.clock() - claims["iat"] > 3600:
            return expired_provider_token()
        return None

    def _check_headers(self, headers: dict[str, str]) -> Answer | None:
        topic = headers.get("apns-topic")
        if not topic:
            return reason(400, "MissingTopic")
        if topic != self.topic:
            return device_token_not_for_topic()
        if headers.get("apns-push-type") not in PUSH_TYPES:
            return reason(400, "InvalidPushType")
        if headers.get("apns-priority", "10") not in ("1", "5", "10"):
            return reason(400, "BadPriority")
        if not re.fullmatch(r"\d+", headers.get("apns-expiration", "0")):
            return reason(400, "BadExpirationDate")
        if len(headers.get("apns-collapse-id", "").encode("utf-8")) > 64:
            return reason(400, "BadCollapseId")
        return None

    @staticmethod
    def _check_payload(body: bytes) -> Answer | None:
        if not body:
            return reason(400, "PayloadEmpty")
        if len(body) > MAX_PAYLOAD_BYTES:
            return reason(413, "PayloadTooLarge")
        try:
            payload = json.loads(body)
        except ValueError:
            return reason(400, "BadPayload")
        aps = payload.get("aps") if isinstance(payload, dict) else None
        alert = aps.get("alert") if isinstance(aps, dict) else None
        if not isinstance(alert, dict) or not all(isinstance(alert.get(k), str) for k in ("title", "body")):
            return reason(400, "BadPayload")
        return None

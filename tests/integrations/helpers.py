"""A connector for testing the framework over real HTTP, and the receiver it talks to.

``EchoConnector`` posts each message as JSON to a receiver URL with its idempotency key and
a bearer token (its secret setting). ``Receiver`` is a small HTTP server on a free loopback
port that keeps what arrives and answers as the test tells it: a queue of statuses (500: a
transient failure, 400: a permanent one), or not at all when stopped (the vendor down).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import deque
from dataclasses import dataclass, field

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from portal.integrations.base import (
    BadWebhook,
    Field,
    LabConnector,
    PermanentError,
    SettingRefused,
    TransientError,
)

TOKEN = "echo-token-0123456789abcdef"


class EchoConnector(LabConnector):
    name = "test-echo"
    title = "Echo (tests)"
    description = "Posts each message to a receiver."
    fields = (
        Field("url", "Receiver URL", type="url", help="Where messages are posted"),
        Field("token", "Access token", type="secret"),
        Field("batch", "Batch size", type="integer", required=False, default=1),
    )

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.settings['token']}"}

    def check(self) -> None:
        try:
            answer = requests.get(
                f"{self.settings['url']}/check", headers=self._headers(), timeout=5
            )
        except requests.RequestException as error:
            raise SettingRefused("The receiver cannot be reached.", "url") from error
        if answer.status_code == 401:
            raise SettingRefused("The receiver refused this access token.", "token")

    def deliver(self, operation: str, payload: dict, idempotency_key: str) -> dict:
        try:
            answer = requests.post(
                f"{self.settings['url']}/messages",
                json={"operation": operation, "payload": payload},
                headers={**self._headers(), "Idempotency-Key": idempotency_key},
                timeout=5,
            )
        except requests.RequestException as error:
            raise TransientError(f"receiver unreachable ({type(error).__name__})") from error
        if answer.status_code >= 500 or answer.status_code == 429:
            raise TransientError(f"receiver answered {answer.status_code}")
        if answer.status_code >= 400:
            raise PermanentError(f"receiver refused the message ({answer.status_code})")
        return answer.json()

    def verify_webhook(self, headers, raw_body: bytes, now) -> str:
        """The token as a shared secret: ``X-Echo-Signature`` = hex HMAC-SHA256 of
        ``timestamp.body``, the timestamp within 5 minutes."""
        timestamp = headers.get("X-Echo-Timestamp", "")
        signature = headers.get("X-Echo-Signature", "")
        expected = sign(self.settings["token"], timestamp, raw_body)
        if not hmac.compare_digest(signature, expected):
            raise BadWebhook("bad signature")
        if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > 300:
            raise BadWebhook("stale")
        event_id = headers.get("X-Echo-Event", "")
        if not event_id:
            raise BadWebhook("no event id")
        return event_id

    def parse_webhook(self, raw_body: str) -> tuple[str, dict]:
        try:
            event = json.loads(raw_body)
        except ValueError:
            raise BadWebhook("malformed JSON", stored=True) from None
        if not isinstance(event, dict) or not event.get("type"):
            raise BadWebhook("no event type", stored=True)
        return event["type"], event


def sign(secret: str, timestamp: str, raw_body: bytes) -> str:
    message = timestamp.encode() + b"." + raw_body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass
class Receiver:
    """The other side: keeps every message posted (key, body), answers from ``statuses``
    (200 when empty)."""

    received: list[tuple[str, dict]] = field(default_factory=list)
    statuses: deque = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # When set: the next message is taken in and kept, and its answer held until released
    # (a slow vendor; the test kills the worker meanwhile).
    hold: threading.Event | None = None
    holding: threading.Event = field(default_factory=threading.Event)

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Response(status=401)(environ, start_response)
        if request.path == "/check":
            return Response("ok")(environ, start_response)
        if self.hold is not None:
            hold, self.hold = self.hold, None
            with self.lock:
                self.received.append((request.headers["Idempotency-Key"], request.get_json()))
            self.holding.set()
            hold.wait(30)
            return Response(status=504)(environ, start_response)
        with self.lock:
            status = self.statuses.popleft() if self.statuses else 200
            if status == 200:
                self.received.append((request.headers["Idempotency-Key"], request.get_json()))
                count = len(self.received)
        if status != 200:
            return Response(status=status)(environ, start_response)
        body = json.dumps({"accepted": count})
        return Response(body, mimetype="application/json")(environ, start_response)

    def keys(self) -> list[str]:
        with self.lock:
            return [key for key, _ in self.received]


class ReceiverServer:
    """``Receiver`` served on a loopback port in a thread. ``stop()`` takes it down (calls
    are refused, as when the vendor is down); ``start()`` brings it back on the same port."""

    def __init__(self):
        self.receiver = Receiver()
        self.port = 0
        self.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = make_server("127.0.0.1", self.port, self.receiver, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

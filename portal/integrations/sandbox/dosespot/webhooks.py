"""Push notifications to the clinic's endpoint (DOSESPOT.md section 4), on a thread.

The envelope and the ``Authorization`` secret are DoseSpot's. [sandbox] additions: an
event id that stays the same across retries (``X-Sandbox-Event-Id``), a timestamp, and an
HMAC signature over ``timestamp + "." + raw body``, so the portal's inbox can practise
verification and deduplication; and retries on a non-2xx answer or a timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from typing import Any

import requests

from portal.integrations.sandbox.dosespot.records import now_iso
from portal.integrations.sandbox.dosespot.state import SandboxState
from portal.integrations.sandbox.dosespot.timers import Timer

log = logging.getLogger(__name__)

DEFAULT_BACKOFF = (1.0, 5.0, 30.0, 120.0)  # seconds before tries 2..5


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


class WebhookSender:
    def __init__(
        self,
        state: SandboxState,
        url: str | None,
        secret: str,
        backoff: tuple[float, ...] = DEFAULT_BACKOFF,
        timeout: float = 20.0,
    ):
        self.state = state
        self.url = url
        self.secret = secret
        self.backoff = tuple(backoff)
        self.timeout = timeout
        self.timer = Timer("sandbox-webhooks")
        self._held: str | None = None  # an event kept back while webhook_reorder is on
        self._session = requests.Session()
        self._lock = threading.Lock()

    def stop(self) -> None:
        self.timer.stop()
        self._session.close()

    def reset(self) -> None:
        self.timer.clear()
        self._held = None

    def emit(self, event_type: str, data: dict[str, Any]) -> dict:
        """Record an event and schedule its delivery, obeying the webhook fault switches."""
        event = {
            "EventId": str(uuid.uuid4()),
            "EventType": event_type,
            "Data": data,
            "CreatedAt": now_iso(),
            "Attempts": [],
            "Delivery": "pending",
        }
        faults = self.state.faults
        with self.state.lock:
            self.state.store.events.append(event)
        if not self.url:
            event["Delivery"] = "no-url"
            return event
        if faults.webhook_drop:
            event["Delivery"] = "dropped"
            return event
        with self._lock:
            if faults.webhook_reorder and self._held is None:
                self._held = event["EventId"]
                event["Delivery"] = "held"
                return event
            held, self._held = self._held, None
        delay = faults.webhook_delay
        self._schedule(event["EventId"], 1, delay)
        if faults.webhook_duplicate:
            self._schedule(event["EventId"], 1, delay)
        if held:
            # Sent after the newer event: the receiver sees them out of order.
            self._schedule(held, 1, delay + 0.001)
        return event

    def release_held(self) -> None:
        with self._lock:
            held, self._held = self._held, None
        if held:
            self._schedule(held, 1, 0)

    def replay(self, event_id: str) -> bool:
        if self.find(event_id) is None or not self.url:
            return False
        self._schedule(event_id, 1, 0)
        return True

    def find(self, event_id: str) -> dict | None:
        with self.state.lock:
            return next((e for e in self.state.store.events if e["EventId"] == event_id), None)

    def _schedule(self, event_id: str, attempt: int, delay: float) -> None:
        self.timer.call_later(delay, lambda: self._deliver(event_id, attempt))

    def _deliver(self, event_id: str, attempt: int) -> None:
        event = self.find(event_id)
        if event is None:  # the sandbox was reset since
            return
        body = json.dumps(
            {"EventType": event["EventType"], "Data": event["Data"]}, separators=(",", ":")
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Authorization": self.secret,
            "X-Sandbox-Event-Id": event_id,
            "X-Sandbox-Timestamp": timestamp,
            "X-Sandbox-Signature": signature(self.secret, timestamp, body),
        }
        try:
            answer = self._session.post(self.url, data=body, headers=headers, timeout=self.timeout)
            outcome, ok = answer.status_code, 200 <= answer.status_code < 300
        except requests.RequestException as error:
            outcome, ok = type(error).__name__, False
        with self.state.lock:
            event["Attempts"].append({"Attempt": attempt, "At": now_iso(), "Outcome": outcome})
            if ok:
                event["Delivery"] = "delivered"
            elif attempt > len(self.backoff):
                event["Delivery"] = "failed"
            else:
                event["Delivery"] = "retrying"
        if not ok and attempt <= len(self.backoff):
            self._schedule(event_id, attempt + 1, self.backoff[attempt - 1])

"""Webhooks: verified, stored, acknowledged, then processed once by the worker from the
stored copy; forged, stale and oversized requests refused and only counted; malformed ones
stored as rejected with the reason; duplicates acknowledged and not processed twice."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.integrations import inbox, registry
from portal.integrations.jobs import process_inbox
from portal.integrations.models import InboxMessage, WebhookRefusal
from portal.integrations.settings import Submitted, save_and_enable
from tests.integrations.helpers import TOKEN, EchoConnector, ReceiverServer, sign
from tests.support.clients import PortalClient, actor_of

URL = "/integrations/test-echo/webhook"


@pytest.fixture
def echo(app):
    server = ReceiverServer()
    registry.register(EchoConnector)
    handled: list[tuple[str, dict]] = []

    def handle(connector, event_type, data):
        if data.get("explode"):
            raise RuntimeError("Jane Doe's record")  # words that must not be kept
        handled.append((event_type, data))
        return data.get("patient")

    inbox.register_handler("lab", handle)
    with app.app_context():
        save_and_enable(
            actor_of("admin"),
            "test-echo",
            Submitted(values={"url": server.url}, secrets={"token": TOKEN}),
        )
        db.session.remove()
    yield handled
    inbox.unregister_handler("lab")
    registry.unregister("test-echo")
    server.stop()


def post(app, body: bytes, *, event_id="evt-1", secret=TOKEN, timestamp=None):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/json",
        "X-Echo-Timestamp": timestamp,
        "X-Echo-Signature": sign(secret, timestamp, body),
        "X-Echo-Event": event_id,
    }
    return PortalClient(app).client.post(URL, data=body, headers=headers)


def stored(app) -> list[InboxMessage]:
    with app.app_context():
        rows = list(db.session.scalars(select(InboxMessage).order_by(InboxMessage.id)))
        db.session.expunge_all()
        return rows


def refusals(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(WebhookRefusal.reason).order_by(WebhookRefusal.id)))


def process(app) -> str | None:
    with app.app_context():
        said = process_inbox()
        db.session.remove()
        return said


def event(**data) -> bytes:
    return json.dumps({"type": "status", **data}).encode()


def test_a_verified_event_is_stored_acknowledged_and_processed_once(app, echo):
    body = event(patient=7, status="sent")
    answer = post(app, body)
    assert answer.status_code == 200 and answer.json == {"status": "accepted"}
    assert "Set-Cookie" not in answer.headers  # no session for a machine
    [message] = stored(app)
    assert (message.event_id, message.event_type, message.status) == ("evt-1", "status", "received")
    assert message.body == body.decode()
    assert echo == []  # nothing processed in the sender's request
    assert process(app) == "inbox: 1 processed"
    assert echo == [("status", {"type": "status", "patient": 7, "status": "sent"})]
    [message] = stored(app)
    assert (message.status, message.patient_id, message.attempts) == ("processed", 7, 1)
    # The same event resent (the sender did not see our answer): acknowledged, not redone.
    again = post(app, body)
    assert again.status_code == 200 and again.json == {"status": "duplicate"}
    assert process(app) is None
    assert len(echo) == 1 and len(stored(app)) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"secret": "forged-secret"}, "bad signature"),
        ({"timestamp": int(time.time()) - 3600}, "stale"),
        ({"event_id": ""}, "no event id"),
    ],
)
def test_a_forged_stale_or_unnamed_request_is_refused_and_only_counted(app, echo, change, reason):
    answer = post(app, event(patient=7), **change)
    assert answer.status_code == 401 and answer.json == {"error": "unauthorized"}
    assert stored(app) == []
    assert refusals(app) == [reason]


def test_a_malformed_body_is_kept_as_rejected_with_the_reason(app, echo):
    answer = post(app, b"{not json", event_id="evt-bad")
    assert answer.status_code == 400
    assert answer.json == {"error": "malformed", "reason": "malformed JSON"}
    [message] = stored(app)
    assert (message.status, message.reason, message.body) == (
        "rejected",
        "malformed JSON",
        "{not json",
    )
    assert process(app) is None and echo == []


def test_a_body_over_the_limit_is_refused_unread(app, echo):
    body = event(padding="x" * (1024 * 1024))
    answer = post(app, body, event_id="evt-big")
    assert answer.status_code == 413
    assert stored(app) == [] and refusals(app) == ["too large"]


def test_reordered_events_are_each_processed(app, echo):
    assert post(app, event(patient=7, step=2), event_id="evt-2").status_code == 200
    assert post(app, event(patient=7, step=1), event_id="evt-1").status_code == 200
    process(app)
    assert sorted(data["step"] for _, data in echo) == [1, 2]


def test_a_failing_handler_is_retried_later_and_keeps_no_patient_words(app, echo):
    post(app, event(patient=7, explode=True))
    assert process(app) == "inbox: 0 processed, 1 failed"
    [message] = stored(app)
    assert message.status == "failed" and message.reason == "processing failed: RuntimeError"
    assert "Jane" not in message.reason


def test_an_unknown_or_disabled_connector_is_not_found(app):
    answer = PortalClient(app).client.post("/integrations/nobody/webhook", data=b"{}")
    assert answer.status_code == 404


def test_an_event_id_longer_than_we_keep_is_refused_not_a_crash(app, echo):
    answer = post(app, event(patient=7), event_id="e" * 500)
    assert answer.status_code == 401
    assert stored(app) == [] and refusals(app) == ["event id too long"]

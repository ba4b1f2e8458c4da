"""The integrations console: who may use it, a connector's settings (checked against a real
receiver over HTTP), enable/disable and pause/resume, health, the message log (no content,
keyset pages, replays), vendors' clinician ids, and secrets that never come back."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select

from portal.auth.models import User
from portal.extensions import db
from portal.integrations import registry, settings
from portal.integrations.base import IntegrationError
from portal.integrations.health import health_of
from portal.integrations.models import (
    ConnectorSetting,
    ExternalId,
    InboxMessage,
    OutboxMessage,
    WebhookRefusal,
)
from portal.timeutil import utcnow
from tests.integrations.helpers import TOKEN, EchoConnector, ReceiverServer
from tests.support.audit import audit_events

CONSOLE = "/admin/integrations"
ECHO = f"{CONSOLE}/test-echo"
WRONG_TOKEN = "wrong-token-7f3a9c"
PAYLOAD_MARK = "PAYLOAD-CONTENT-DO-NOT-SHOW-41"
BODY_MARK = "WEBHOOK-BODY-DO-NOT-SHOW-42"


class EchoWithRegistry(EchoConnector):
    """The echo connector, plus a vendor that says how its clinicians are registered."""

    name = "test-echo-registry"
    title = "Echo with registration (tests)"

    def clinician_registration_status(self, external_id: str) -> str:
        if external_id == "DS-BROKEN":
            raise IntegrationError("the vendor did not answer")
        return f"registered ({external_id})"


@pytest.fixture
def receiver():
    server = ReceiverServer()
    yield server
    server.stop()


@pytest.fixture
def echo():
    registry.register(EchoConnector)
    yield EchoConnector
    registry.unregister(EchoConnector.name)


@pytest.fixture
def echo_with_registry():
    registry.register(EchoWithRegistry)
    yield EchoWithRegistry
    registry.unregister(EchoWithRegistry.name)


def _form(url: str, token: str = "", batch: str = "1") -> dict:
    return {"setting_url": url, "setting_token": token, "setting_batch": batch}


def _enable(admin, receiver, token: str = TOKEN):
    response = admin.post_form(ECHO, _form(receiver.url, token))
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    return response


def _setting(app) -> ConnectorSetting | None:
    with app.app_context():
        setting = settings.setting_of("test-echo")
        if setting is not None:
            db.session.expunge(setting)
        return setting


def _outbox(app, count: int = 1, **values) -> list[int]:
    """Messages written directly with the model (the log and replay need only rows)."""
    now = utcnow()
    ids = []
    with app.app_context():
        for number in range(count):
            message = OutboxMessage(
                connector=values.get("connector", "test-echo"),
                operation=values.get("operation", f"send-{number:03d}"),
                payload={"note": PAYLOAD_MARK},
                idempotency_key=f"test:{uuid.uuid4().hex}",
                status=values.get("status", "pending"),
                attempts=values.get("attempts", 0),
                next_attempt_at=now,
                last_error=values.get("last_error"),
                patient_id=values.get("patient_id"),
                prescription_id=values.get("prescription_id"),
                created_at=values.get("created_at", now),
                updated_at=values.get("updated_at", now),
                delivered_at=values.get("delivered_at"),
            )
            db.session.add(message)
            db.session.flush()
            ids.append(message.id)
        db.session.commit()
    return ids


# --- who may use it ------------------------------------------------------------------------


def _console_requests(message_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", CONSOLE),
        ("GET", ECHO),
        ("POST", ECHO),
        ("POST", f"{ECHO}/disable"),
        ("POST", f"{ECHO}/enable"),
        ("POST", f"{ECHO}/pause"),
        ("POST", f"{ECHO}/resume"),
        ("POST", f"{ECHO}/clinicians"),
        ("GET", f"{ECHO}/messages"),
        ("POST", f"{ECHO}/messages/{message_id}/replay"),
    ]


def test_only_admins_reach_the_console(app, signed_in, client, echo, receiver):
    (message_id,) = _outbox(app, status="dead", last_error="receiver refused")
    for role in ("front_desk", "nurse", "prescriber"):
        browser = signed_in(role)
        for method, path in _console_requests(message_id):
            response = browser.open(path, method=method, data={"csrf_token": browser.csrf})
            assert response.status_code == 403, (role, method, path)
    for method, path in _console_requests(message_id):
        response = client.get(path) if method == "GET" else client.post_form(path)
        assert response.status_code == 302, (method, path)
        assert "/auth/sign-in" in response.location
    admin = signed_in("admin")
    for method, path in _console_requests(message_id):
        response = admin.open(path, method=method, data={"csrf_token": admin.csrf})
        assert response.status_code in (200, 302, 409, 422), (method, path, response.status_code)
    assert admin.get(f"{CONSOLE}/not-installed").status_code == 404


def test_the_admin_navigation_links_to_the_console(signed_in):
    assert f'href="{CONSOLE}"' in signed_in("admin").get("/").get_data(as_text=True)
    assert f'href="{CONSOLE}"' not in signed_in("prescriber").get("/").get_data(as_text=True)


# --- settings -----------------------------------------------------------------------------


def test_the_list_shows_every_connector_by_kind_with_state_and_health(signed_in, echo):
    body = signed_in("admin").get(CONSOLE).get_data(as_text=True)
    assert "Laboratory" in body
    assert "Echo (tests)" in body and "Posts each message to a receiver." in body
    assert "Not configured" in body and "Not set up" in body


def test_the_form_is_made_from_the_schema(signed_in, echo):
    body = signed_in("admin").get(ECHO).get_data(as_text=True)
    assert '<label class="form-label" for="setting_url">Receiver URL' in body
    assert 'type="url"' in body and 'type="password"' in body and 'inputmode="numeric"' in body
    assert "Where messages are posted" in body  # the field's help
    assert 'id="setting_token-state">not set<' in body


def test_a_wrong_token_is_refused_beside_its_field_and_nothing_is_saved(
    app, signed_in, receiver, echo
):
    admin = signed_in("admin")
    response = admin.post_form(ECHO, _form(receiver.url, WRONG_TOKEN, batch="7"))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'id="setting_token-error">The receiver refused this access token.</div>' in body
    assert f'value="{receiver.url}"' in body and 'value="7"' in body  # what was typed, kept
    assert WRONG_TOKEN not in body  # ... except the secret
    assert _setting(app) is None
    assert not audit_events(app, "integrations.connector_enabled")


def test_a_refusal_of_no_field_goes_above_the_form(signed_in, receiver, echo):
    receiver.stop()  # the check cannot reach it: refused beside the URL
    body = signed_in("admin").post_form(ECHO, _form(receiver.url, TOKEN)).get_data(as_text=True)
    assert 'id="setting_url-error">The receiver cannot be reached.</div>' in body
    receiver.start()


def test_the_right_token_enables_and_the_health_shows(app, signed_in, receiver, echo):
    admin = signed_in("admin")
    _enable(admin, receiver)
    setting = _setting(app)
    assert setting.enabled and not setting.paused
    page = admin.get(ECHO).get_data(as_text=True)
    assert "Echo (tests) is saved and enabled." in page
    assert "<strong>Enabled</strong>" in page and ">Healthy</span>" in page
    assert 'id="setting_token-state">set<' in page
    assert "Leave blank to keep the stored one." in page
    (event,) = audit_events(app, "integrations.connector_enabled")
    assert event.detail.startswith("test-echo; changed:") and TOKEN not in event.detail


def test_a_blank_secret_keeps_the_stored_one(app, signed_in, receiver, echo):
    admin = signed_in("admin")
    _enable(admin, receiver)
    response = admin.post_form(ECHO, _form(receiver.url, "", batch="5"))
    assert response.status_code == 302  # checked again, with the stored token
    with app.app_context():
        connector = settings.enabled_connector("test-echo")
        assert connector.settings["token"] == TOKEN and connector.settings["batch"] == 5


def test_disable_enable_pause_resume(app, signed_in, receiver, echo):
    admin = signed_in("admin")
    _enable(admin, receiver)
    assert admin.post_form(f"{ECHO}/pause").status_code == 302
    assert _setting(app).paused
    page = admin.get(ECHO).get_data(as_text=True)
    assert "<strong>Paused</strong>" in page and "Resume delivery" in page
    assert "delivery is paused" in page and ">Needs attention</span>" in page
    assert admin.post_form(f"{ECHO}/resume").status_code == 302
    assert not _setting(app).paused
    assert admin.post_form(f"{ECHO}/disable").status_code == 302
    assert not _setting(app).enabled
    assert "<strong>Disabled</strong>" in admin.get(ECHO).get_data(as_text=True)
    assert admin.post_form(f"{ECHO}/enable").status_code == 302  # checked again first
    assert _setting(app).enabled
    actions = [
        event.action
        for event in audit_events(app)
        if event.category == "integrations" and not event.action.endswith("_viewed")
    ]
    assert actions == [
        "integrations.connector_enabled",
        "integrations.delivery_paused",
        "integrations.delivery_resumed",
        "integrations.connector_disabled",
        "integrations.connector_enabled",
    ]


def test_enabling_again_when_the_check_fails_says_so_beside_the_field(
    app, signed_in, receiver, echo
):
    admin = signed_in("admin")
    _enable(admin, receiver)
    admin.post_form(f"{ECHO}/disable")
    receiver.stop()  # the vendor is unreachable now: the stored URL fails the check
    response = admin.post_form(f"{ECHO}/enable")
    receiver.start()
    assert response.status_code == 422
    assert 'id="setting_url-error">The receiver cannot be reached.</div>' in response.get_data(
        as_text=True
    )
    assert not _setting(app).enabled


def test_an_unconfigured_connector_cannot_be_paused(signed_in, echo):
    response = signed_in("admin").post_form(f"{ECHO}/pause")
    assert response.status_code == 422
    assert "The connector is not configured." in response.get_data(as_text=True)


# --- health -------------------------------------------------------------------------------


def test_health_counts_from_the_tables(app, signed_in, receiver, echo):
    _enable(signed_in("admin"), receiver)
    now = utcnow()
    _outbox(app, delivered_at=now - timedelta(minutes=30), status="delivered")
    _outbox(app, 2, status="dead", last_error="receiver answered 500", updated_at=now)
    _outbox(app, status="pending", created_at=now - timedelta(minutes=90))
    _outbox(app, connector="other", status="dead")  # another connector's: not counted
    with app.app_context():
        db.session.add_all(
            [
                InboxMessage(
                    connector="test-echo",
                    event_id=f"e{number}",
                    body=BODY_MARK,
                    status=status,
                    next_attempt_at=now,
                    received_at=now,
                )
                for number, status in enumerate(("processed", "rejected"))
            ]
            + [WebhookRefusal(connector="test-echo", refused_at=now, reason="bad secret")]
            + [
                WebhookRefusal(
                    connector="test-echo", refused_at=now - timedelta(days=2), reason="x"
                )
            ]
        )
        db.session.commit()
        health = health_of(["test-echo", "nothing-here"])
    echo_health = health["test-echo"]
    assert (echo_health.pending, echo_health.failed, echo_health.dead) == (1, 0, 2)
    assert echo_health.oldest_pending_age >= timedelta(minutes=89)
    assert echo_health.last_success is not None
    assert echo_health.last_error == "receiver answered 500"
    assert (
        echo_health.webhooks_received,
        echo_health.webhooks_rejected,
        echo_health.webhooks_refused,
    ) == (2, 1, 1)
    assert echo_health.word == "Failing"
    assert health["nothing-here"].state == "not configured"
    page = signed_in("admin").get(ECHO).get_data(as_text=True)
    assert ">Failing</span>" in page and "2 message(s) failed or dead" in page
    assert "2 received, 1 rejected, 1 refused" in page
    assert PAYLOAD_MARK not in page and BODY_MARK not in page


# --- the message log ----------------------------------------------------------------------


def test_the_log_shows_no_content_and_a_dead_message_is_replayed(app, signed_in, echo):
    (dead,) = _outbox(app, status="dead", last_error="out of attempts", patient_id=17, attempts=8)
    _outbox(app, status="delivered", delivered_at=utcnow())
    admin = signed_in("admin")
    page = admin.get(f"{ECHO}/messages?status=dead").get_data(as_text=True)
    assert "out of attempts" in page and "<td>17</td>" in page
    assert PAYLOAD_MARK not in page
    assert page.count(">delivered<") == 1  # only in the status filter's options
    assert f'action="{ECHO}/messages/{dead}/replay"' in page
    response = admin.post_form(f"{ECHO}/messages/{dead}/replay", {"status": "dead"})
    assert response.status_code == 302 and response.location.endswith("messages?status=dead")
    assert f"Message {dead} will be sent again." in admin.get(response.location).get_data(
        as_text=True
    )
    with app.app_context():
        message = db.session.get(OutboxMessage, dead)
        assert (message.status, message.attempts) == ("pending", 0)
    (event,) = audit_events(app, "integrations.message_replayed")
    assert event.object_id == str(dead) and event.username == "admin"
    # Pending now: a second replay is refused, in words.
    again = admin.post_form(f"{ECHO}/messages/{dead}/replay")
    assert "Only failed or dead messages" in admin.get(again.location).get_data(as_text=True)
    # Another connector's message is not this one's to replay.
    (other,) = _outbox(app, connector="other", status="dead")
    assert admin.post_form(f"{ECHO}/messages/{other}/replay").status_code == 404


def test_the_inbound_log_shows_no_body(app, signed_in, echo):
    with app.app_context():
        db.session.add(
            InboxMessage(
                connector="test-echo",
                event_id="evt-1",
                event_type="prescription.sent",
                body=BODY_MARK,
                status="processed",
                next_attempt_at=utcnow(),
                received_at=utcnow(),
                patient_id=23,
            )
        )
        db.session.commit()
    page = signed_in("admin").get(f"{ECHO}/messages?direction=inbound").get_data(as_text=True)
    assert "prescription.sent" in page and "<td>23</td>" in page
    assert BODY_MARK not in page


def test_the_log_pages_by_id(app, signed_in, echo):
    _outbox(app, 120)  # send-000 (oldest) .. send-119 (newest)
    admin = signed_in("admin")
    seen, path, pages = [], f"{ECHO}/messages", 0
    while path:
        body = admin.get(path).get_data(as_text=True)
        seen += re.findall(r"<td>(send-\d{3})</td>", body)
        older = re.search(r'href="([^"]*before=\d+[^"]*)">Older<', body)
        path = html.unescape(older.group(1)) if older else None
        pages += 1
    assert pages == 3
    assert seen == [f"send-{number:03d}" for number in range(119, -1, -1)]


# --- clinician ids ------------------------------------------------------------------------


def _drlee_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == "drlee"))


def test_clinician_ids_are_saved_and_audited(app, signed_in, echo):
    admin = signed_in("admin")
    user_id = _drlee_id(app)
    page = admin.get(ECHO).get_data(as_text=True)
    assert f'for="clinicians-clinician_{user_id}">Jordan Lee</label>' in page
    assert "Sam Okafor" not in page  # nurses have no prescriber id
    response = admin.post_form(f"{ECHO}/clinicians", {f"clinicians-clinician_{user_id}": "DS-100"})
    assert response.status_code == 302
    with app.app_context():
        row = db.session.scalars(select(ExternalId)).one()
        assert (row.connector, row.kind, row.local_id, row.external_id) == (
            "test-echo",
            "clinician",
            user_id,
            "DS-100",
        )
    (event,) = audit_events(app, "integrations.clinician_mapped")
    assert event.detail == f"test-echo; user {user_id}"
    assert 'value="DS-100"' in admin.get(ECHO).get_data(as_text=True)
    # Saving the same again changes nothing and records nothing; blank removes it.
    admin.post_form(f"{ECHO}/clinicians", {f"clinicians-clinician_{user_id}": "DS-100"})
    assert len(audit_events(app, "integrations.clinician_mapped")) == 1
    admin.post_form(f"{ECHO}/clinicians", {f"clinicians-clinician_{user_id}": ""})
    with app.app_context():
        assert db.session.scalars(select(ExternalId)).first() is None
    assert len(audit_events(app, "integrations.clinician_unmapped")) == 1


def test_an_id_of_another_clinician_is_refused_beside_the_field(app, signed_in, echo):
    user_id = _drlee_id(app)
    with app.app_context():
        db.session.add(
            ExternalId(
                connector="test-echo",
                kind="clinician",
                local_id=999,
                external_id="DS-TAKEN",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        db.session.commit()
    response = signed_in("admin").post_form(
        f"{ECHO}/clinicians", {f"clinicians-clinician_{user_id}": "DS-TAKEN"}
    )
    assert response.status_code == 422
    assert (
        f'id="clinicians-clinician_{user_id}-error">This id is already another clinician'
        in response.get_data(as_text=True)
    )


def test_registration_is_read_from_the_vendor_when_the_connector_can(
    app, signed_in, receiver, echo, echo_with_registry
):
    admin = signed_in("admin")
    user_id = _drlee_id(app)
    path = f"{CONSOLE}/test-echo-registry"
    assert "Registration at the vendor" not in admin.get(ECHO).get_data(as_text=True)
    assert admin.post_form(path, _form(receiver.url, TOKEN)).status_code == 302
    admin.post_form(f"{path}/clinicians", {f"clinicians-clinician_{user_id}": "DS-7"})
    assert "registered (DS-7)" in admin.get(path).get_data(as_text=True)
    admin.post_form(f"{path}/clinicians", {f"clinicians-clinician_{user_id}": "DS-BROKEN"})
    assert "unavailable: the vendor did not answer" in admin.get(path).get_data(as_text=True)
    admin.post_form(f"{path}/disable")
    assert "unavailable: the connector is not enabled" in admin.get(path).get_data(as_text=True)


# --- secrets ------------------------------------------------------------------------------


def test_secrets_never_appear_in_any_response_or_audit_detail(app, signed_in, receiver, echo):
    admin = signed_in("admin")
    (dead,) = _outbox(app, status="dead", last_error="refused")
    responses = [
        admin.post_form(ECHO, _form(receiver.url, WRONG_TOKEN)),
        admin.post_form(ECHO, _form(receiver.url, TOKEN)),
        admin.post_form(ECHO, _form("not a url", "")),
        admin.post_form(f"{ECHO}/pause"),
        admin.post_form(f"{ECHO}/resume"),
        admin.post_form(f"{ECHO}/disable"),
        admin.post_form(f"{ECHO}/enable"),
        admin.post_form(f"{ECHO}/clinicians", {f"clinicians-clinician_{_drlee_id(app)}": "D-1"}),
        admin.post_form(f"{ECHO}/messages/{dead}/replay"),
    ]
    for path in (CONSOLE, ECHO, f"{ECHO}/messages", f"{ECHO}/messages?direction=inbound"):
        responses.append(admin.get(path))
    with app.app_context():
        stored_token = db.session.scalars(select(ConnectorSetting)).one().secrets["token"]
    for response in responses:
        body = response.get_data(as_text=True)
        for secret in (TOKEN, WRONG_TOKEN, stored_token):
            assert secret not in body, response.request.path
    for event in audit_events(app):
        for secret in (TOKEN, WRONG_TOKEN, stored_token):
            assert secret not in (event.detail or ""), event.action


def test_health_costs_the_same_queries_for_one_connector_or_many(app, echo):
    """Six statements whatever the number of connectors and messages: no query per row."""
    _outbox(app, 30, status="dead", last_error="refused")
    _outbox(app, 30, status="delivered", delivered_at=utcnow())
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        health_of(["test-echo"])  # the clinic's row and zone, read once and kept a while
        sqlalchemy_event.listen(db.engine, "before_cursor_execute", count)
        try:
            health_of(["test-echo"])
            one = len(statements)
            statements.clear()
            health_of(["test-echo", "other", "third", "fourth"])
            many = len(statements)
        finally:
            sqlalchemy_event.remove(db.engine, "before_cursor_execute", count)
    assert one == many <= 7, statements  # six, and the clinic settings read for its id


def test_looking_at_a_connector_and_its_message_log_is_audited(app, signed_in, echo):
    admin = signed_in("admin")
    assert admin.get("/admin/integrations").status_code == 200
    assert admin.get("/admin/integrations/test-echo").status_code == 200
    log = admin.get("/admin/integrations/test-echo/messages?direction=outbound&status=dead")
    assert log.status_code == 200
    seen = [
        (event.action, event.detail, event.username)
        for event in audit_events(app)
        if event.action.endswith("_viewed") and event.category == "integrations"
    ]
    assert seen == [
        ("integrations.console_viewed", None, "admin"),
        ("integrations.connector_viewed", "test-echo", "admin"),
        ("integrations.message_log_viewed", "test-echo outbound dead", "admin"),
    ]

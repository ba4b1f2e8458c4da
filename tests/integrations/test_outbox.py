"""The transactional outbox and its delivery, against a receiver over real HTTP: the message
commits with its change or not at all, is delivered once when all goes well, waits while the
vendor is down and is delivered when it is back, retries with back-off, fails at once on a
refusal, dies after its attempts, and returns to the queue when its worker dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from portal.actors import SYSTEM
from portal.audit import services as audit
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.integrations import outbox, registry
from portal.integrations.delivery import deliver_due
from portal.integrations.models import ConnectorSetting, OutboxMessage
from portal.integrations.settings import Submitted, save_and_enable, set_paused
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case
from tests.integrations.helpers import TOKEN, EchoConnector, ReceiverServer
from tests.support.clients import actor_of
from tests.support.database import AUDIT_KEY, DATA_KEY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver():
    server = ReceiverServer()
    yield server
    server.stop()


@pytest.fixture
def echo(app, receiver):
    """The echo connector registered and enabled, posting to ``receiver``."""
    registry.register(EchoConnector)
    with app.app_context():
        save_and_enable(
            actor_of("admin"),
            "test-echo",
            Submitted(values={"url": receiver.url}, secrets={"token": TOKEN}),
        )
        db.session.remove()
    yield receiver
    registry.unregister("test-echo")


def enqueue(app, key: str, *, payload: dict | None = None) -> int:
    with app.app_context(), use_case():
        message = outbox.enqueue(
            "test-echo", "send", payload or {"n": key}, idempotency_key=key, patient_id=7
        )
        return message.id


def message(app, message_id: int) -> OutboxMessage:
    with app.app_context():
        row = db.session.get(OutboxMessage, message_id)
        db.session.expunge(row)
        return row


def deliver(app, **options):
    with app.app_context():
        run = deliver_due(name="test-worker", **options)
        db.session.remove()
        return run


def make_due(app, message_id: int) -> None:
    """Let the back-off pass."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def test_the_message_commits_with_its_change_or_not_at_all(app):
    with app.app_context():
        with pytest.raises(ZeroDivisionError), use_case():
            audit.record(SYSTEM, "test.change")
            outbox.enqueue("test-echo", "send", {"n": 1}, idempotency_key="rolled-back")
            1 / 0  # noqa: B018  the use case fails after both were written
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        assert not db.session.scalars(select(AuditEvent).filter_by(action="test.change")).all()
        with use_case():
            audit.record(SYSTEM, "test.change")
            outbox.enqueue("test-echo", "send", {"n": 1}, idempotency_key="committed")
        assert db.session.scalars(select(OutboxMessage.idempotency_key)).all() == ["committed"]


def test_enqueue_outside_a_use_case_is_refused(app):
    with app.app_context(), pytest.raises(RuntimeError, match="inside the use case"):
        outbox.enqueue("test-echo", "send", {}, idempotency_key="stray")


def test_one_idempotency_key_makes_one_message(app):
    enqueue(app, "rx-1:send")
    with pytest.raises(IntegrityError):
        enqueue(app, "rx-1:send")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_a_message_is_delivered_once_with_its_key(app, echo):
    first = enqueue(app, "rx-1:send", payload={"drug": "lisinopril"})
    second = enqueue(app, "rx-2:send")
    run = deliver(app)
    assert run.delivered == 2
    assert echo.receiver.keys() == ["rx-1:send", "rx-2:send"]
    assert echo.receiver.received[0][1] == {"operation": "send", "payload": {"drug": "lisinopril"}}
    delivered = message(app, first)
    assert (delivered.status, delivered.attempts, delivered.leased_by) == ("delivered", 1, None)
    assert delivered.result == {"accepted": 1} and delivered.delivered_at is not None
    assert message(app, second).status == "delivered"
    assert deliver(app).delivered == 0  # nothing is sent twice
    assert len(echo.receiver.keys()) == 2


def test_while_the_vendor_is_down_messages_wait_and_go_once_it_is_back(app, echo):
    echo.stop()
    message_id = enqueue(app, "rx-3:send")
    run = deliver(app)
    assert run.retrying == 1
    waiting = message(app, message_id)
    assert waiting.status == "pending" and waiting.attempts == 1
    assert waiting.next_attempt_at > utcnow()  # backing off
    assert waiting.last_error == "receiver unreachable (ConnectionError)"
    assert deliver(app).handled == 0  # not due yet
    echo.start()
    make_due(app, message_id)
    assert deliver(app).delivered == 1
    assert echo.receiver.keys() == ["rx-3:send"]
    assert message(app, message_id).attempts == 2


def test_a_refusal_fails_at_once_and_a_replay_sends_it_again(app, echo):
    echo.receiver.statuses.extend([400])
    message_id = enqueue(app, "rx-4:send")
    assert deliver(app).failed == 1
    failed = message(app, message_id)
    assert failed.status == "failed" and failed.last_error == "receiver refused the message (400)"
    with app.app_context():
        outbox.replay(actor_of("admin"), message_id)
        replayed = db.session.scalars(
            select(AuditEvent).filter_by(action="integrations.message_replayed")
        ).one()
        assert replayed.object_id == str(message_id) and replayed.username == "admin"
        with pytest.raises(Refused, match="Only failed or dead"):
            outbox.replay(actor_of("admin"), message_id)  # pending now: nothing to replay
    assert deliver(app).delivered == 1
    assert echo.receiver.keys() == ["rx-4:send"]


def test_after_its_attempts_a_message_is_dead(app, echo):
    echo.receiver.statuses.extend([503, 503, 503])
    message_id = enqueue(app, "rx-5:send")
    for _ in range(2):
        assert deliver(app, max_attempts=3).retrying == 1
        make_due(app, message_id)
    assert deliver(app, max_attempts=3).dead == 1
    dead = message(app, message_id)
    assert (dead.status, dead.attempts, dead.last_error) == ("dead", 3, "receiver answered 503")
    assert echo.receiver.keys() == []


def test_back_off_grows_with_jitter_and_a_cap():
    waits = [outbox.backoff_seconds(attempt) for attempt in range(1, 30) for _ in range(20)]
    assert all(1.0 <= wait <= outbox.BACKOFF_CAP_SECONDS for wait in waits)
    assert len({round(wait, 3) for wait in waits}) > 100  # jittered, not in lockstep
    late = [outbox.backoff_seconds(12) for _ in range(200)]
    assert max(late) > 10 * max(outbox.backoff_seconds(1) for _ in range(200))


def test_a_message_held_by_a_worker_that_died_returns_after_its_lease(app, echo):
    message_id = enqueue(app, "rx-6:send")
    with app.app_context():
        lost = outbox.claim_next("worker-that-dies", {"test-echo"}, lease_seconds=60)
        assert lost.id == message_id
        assert outbox.claim_next("other", {"test-echo"}) is None  # held: not due
        later = utcnow() + timedelta(seconds=61)
        taken = outbox.claim_next("other", {"test-echo"}, now=later)
        assert taken.id == message_id and taken.attempts == 2
        # The first worker, back from the dead, cannot record over the new holder.
        assert outbox.mark_delivered(lost, {"late": True}) is False
        assert outbox.mark_delivered(taken, {"ok": True}) is True
        assert db.session.get(OutboxMessage, message_id).result == {"ok": True}


def test_a_paused_connector_keeps_its_messages_until_resumed(app, echo):
    message_id = enqueue(app, "rx-7:send")
    with app.app_context():
        set_paused(actor_of("admin"), "test-echo", True)
    assert deliver(app).handled == 0
    assert message(app, message_id).status == "pending"
    with app.app_context():
        set_paused(actor_of("admin"), "test-echo", False)
    assert deliver(app).delivered == 1


def test_stopping_gives_back_what_was_claimed(app, echo):
    message_id = enqueue(app, "rx-8:send")
    stop = threading.Event()
    stop.set()
    run = deliver(app, stop=stop)
    assert run.handled == 0
    waiting = message(app, message_id)
    assert (waiting.status, waiting.attempts) == ("pending", 0)


def test_the_worker_command_once_delivers_what_is_due(app, echo):
    enqueue(app, "rx-9:send")
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert echo.receiver.keys() == ["rx-9:send"]


@pytest.mark.postgres_only
def test_workers_sharing_the_queue_never_take_one_message_twice(app):
    with app.app_context(), use_case():
        for number in range(60):
            outbox.enqueue("test-echo", "send", {"n": number}, idempotency_key=f"m-{number}")
    taken: list[int] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        with app.app_context():
            while (claimed := outbox.claim_next(name, {"test-echo"})) is not None:
                with lock:
                    taken.append(claimed.id)
            db.session.remove()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(taken) == 60 and len(set(taken)) == 60


def test_secrets_are_encrypted_and_checked_before_enabling(app, receiver):
    registry.register(EchoConnector)
    try:
        with app.app_context():
            with pytest.raises(Refused) as refused:
                save_and_enable(
                    actor_of("admin"),
                    "test-echo",
                    Submitted(values={"url": receiver.url}, secrets={"token": "wrong-token"}),
                )
            assert (str(refused.value), refused.value.field) == (
                "The receiver refused this access token.",
                "token",
            )
            assert db.session.scalar(select(func.count()).select_from(ConnectorSetting)) == 0
            save_and_enable(
                actor_of("admin"),
                "test-echo",
                Submitted(values={"url": receiver.url}, secrets={"token": TOKEN}),
            )
            # Saved again with the secret left blank: the stored one is kept.
            save_and_enable(
                actor_of("admin"),
                "test-echo",
                Submitted(values={"url": receiver.url, "batch": "3"}, secrets={"token": ""}),
            )
            setting = db.session.scalars(select(ConnectorSetting)).one()
            assert setting.enabled and setting.values == {"url": receiver.url, "batch": 3}
            assert TOKEN not in str(setting.secrets) and set(setting.secrets) == {"token"}
            events = db.session.scalars(
                select(AuditEvent).filter_by(action="integrations.connector_enabled")
            ).all()
            assert [event.detail for event in events] == [
                "test-echo; changed: url, token, batch",
                "test-echo; changed: batch",
            ]
            assert all(TOKEN not in (event.detail or "") for event in events)
    finally:
        registry.unregister("test-echo")


def test_a_worker_killed_mid_delivery_leaves_the_message_to_the_next_one(app, echo):
    """SIGKILL while the vendor is answering: the vendor got the message, we never heard.
    After the lease the next worker sends it again with the same key, so the vendor can tell
    it is a repeat; our side records it delivered once."""
    message_id = enqueue(app, "rx-10:send")
    echo.receiver.hold = threading.Event()
    environment = {
        **os.environ,
        "PORTAL_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "PORTAL_INSTANCE_PATH": app.instance_path,
        "PORTAL_AUDIT_KEY": AUDIT_KEY,
        "PORTAL_DATA_ENCRYPTION_KEY": DATA_KEY,
        "PORTAL_OUTBOX_LEASE_SECONDS": "2",
    }
    command = [sys.executable, "-m", "tests.integrations.run_worker"]
    first = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL)
    try:
        assert echo.receiver.holding.wait(30), "the worker never delivered"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        echo.receiver.hold = None
        if first.poll() is None:
            first.kill()
    in_flight = message(app, message_id)
    assert (in_flight.status, in_flight.attempts) == ("in_flight", 1)
    second = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while message(app, message_id).status != "delivered":
            assert time.monotonic() < deadline, "the message was not delivered after the lease"
            time.sleep(0.1)
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    delivered = message(app, message_id)
    assert (delivered.status, delivered.attempts) == ("delivered", 2)
    assert echo.receiver.keys() == ["rx-10:send", "rx-10:send"]  # the same key both times
    assert "outbox: 1 delivered" in output and "worker stopped" in output
    assert "lisinopril" not in output and "rx-10" not in output  # no payloads, no keys logged

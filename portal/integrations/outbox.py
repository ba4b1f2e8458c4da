"""The transactional outbox: messages written with the change they carry out, delivered later.

A domain service calls ``enqueue()`` inside its use case: the business change, its audit event
and the message commit together or not at all, so nothing is sent for a change that was rolled
back and nothing is lost for one that was committed. Nothing here talks to a vendor: the worker
(``portal.integrations.delivery``) claims due messages in a short transaction of their own,
delivers them outside any transaction, and records the outcome in another.

Claiming sets the message in flight and its ``next_attempt_at`` to the end of a lease: one
indexed range (waiting messages due by now) finds both new work and messages whose worker
died. On PostgreSQL the claim skips rows another worker has locked (``FOR UPDATE SKIP
LOCKED``), so any number of workers on any number of hosts share the queue; on SQLite the
database's single writer serializes claims (one worker is the supported set-up there).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update

from portal.audit import services as audit
from portal.extensions import db
from portal.integrations.models import OutboxMessage
from portal.timeutil import utcnow
from portal.transaction import Refused, end_read, in_use_case, use_case

# Retries: the n-th try waits about BASE * 2**(n-1) seconds (capped), with "full jitter" (a
# random share of it) so that many messages failing together do not return together.
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 15 * 60.0
LEASE_SECONDS = 120.0
LAST_ERROR_MAX_CHARS = 500

# What a domain wants done, in the transaction that records a message's outcome, when a
# message of an operation is delivered or given up on: e.g. prescriptions move a sent
# prescription to "sent" with the vendor's id, or to "error" with the vendor's reason.
# Registered by the domain (the app factory wires it), so integrations import no domain.
OutcomeHandler = Callable[["Outcome"], None]
_outcome_handlers: dict[str, OutcomeHandler] = {}


@dataclass(frozen=True)
class Outcome:
    """A message's recorded outcome, as an outcome handler reads it."""

    message_id: int
    connector: str
    operation: str
    status: str  # "delivered", "failed" (refused as it is) or "dead" (out of attempts)
    result: dict | None
    error: str | None


def register_outcome_handler(operation: str, handler: OutcomeHandler) -> None:
    """Call ``handler`` in the outcome's own transaction whenever a message of
    ``operation`` is delivered, failed or dead (not for a try that will be retried). One
    handler an operation; an error in it rolls the outcome back (the message stays in flight
    and is tried again when its lease ends), so a handler must be idempotent."""
    _outcome_handlers[operation] = handler


def unregister_outcome_handler(operation: str) -> None:
    _outcome_handlers.pop(operation, None)


# A domain may withhold a message at the moment of delivery (e.g. prescriptions: a send of a
# prescription printed meanwhile never goes out). Registered by the domain, so integrations
# import no domain; the check gets the message's id and answers why it is withheld, or None.
Withholder = Callable[[int], "str | None"]
_withholders: dict[str, Withholder] = {}
# What a withheld (or withdrawn) message is marked: never claimed, never replayed.
WITHDRAWN = "cancelled"


def register_withholder(operation: str, withholder: Withholder) -> None:
    """Ask ``withholder`` before each delivery of a message of ``operation``."""
    _withholders[operation] = withholder


def withheld(claimed: Claimed) -> str | None:
    """Why ``claimed`` must not be delivered now (its operation's withholder), or None; reads
    in a short transaction of its own."""
    withholder = _withholders.get(claimed.operation)
    if withholder is None:
        return None
    try:
        return withholder(claimed.id)
    finally:
        end_read()


def withdraw(claimed: Claimed, reason: str) -> bool:
    """Record a claimed message as withheld for good (not an error: nothing was tried)."""
    return _finish(
        claimed, status=WITHDRAWN, last_error=reason[:LAST_ERROR_MAX_CHARS], leased_by=None
    )


# A domain may carry out an operation itself with the connector's own calls, where the
# message must be built from the domain's rows at delivery (e.g. labs: the HL7 order is built
# from the order as it stands, then ``connector.send_order``). Called by the worker outside
# any transaction, like ``Connector.deliver``, with the same errors and return value.
Deliverer = Callable[[Any, "Claimed"], "dict | None"]
_deliverers: dict[str, Deliverer] = {}


def register_deliverer(operation: str, deliverer: Deliverer) -> None:
    """Deliver messages of ``operation`` with ``deliverer(connector, claimed)`` instead of
    ``connector.deliver``."""
    _deliverers[operation] = deliverer


def deliverer_for(operation: str) -> Deliverer | None:
    return _deliverers.get(operation)


def enqueue(
    connector: str,
    operation: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    patient_id: int | None = None,
    prescription_id: int | None = None,
    order_id: int | None = None,
) -> OutboxMessage:
    """Add a message to the outbox in the current use case (flushes, never commits).

    ``idempotency_key`` names the operation for its whole life (e.g. "dosespot:send:rx-41"):
    enqueuing the same key twice in one use case, or in two that race, leaves one message
    (the unique key refuses the second, which rolls back its use case).
    """
    if not in_use_case():
        raise RuntimeError("enqueue() belongs inside the use case of the change it carries out")
    now = utcnow()
    message = OutboxMessage(
        connector=connector,
        operation=operation,
        payload=payload,
        idempotency_key=idempotency_key or f"{connector}:{operation}:{uuid.uuid4().hex}",
        status="pending",
        attempts=0,
        next_attempt_at=now,
        patient_id=patient_id,
        prescription_id=prescription_id,
        order_id=order_id,
        created_at=now,
        updated_at=now,
    )
    db.session.add(message)
    db.session.flush()
    return message


@dataclass(frozen=True)
class Claimed:
    """A message a worker holds: what it needs to deliver it, and its claim."""

    id: int
    connector: str
    operation: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    claim: str


def claim_due(
    worker_name: str,
    connectors: frozenset[str] | set[str],
    *,
    limit: int = 1,
    lease_seconds: float = LEASE_SECONDS,
    now: datetime | None = None,
) -> list[Claimed]:
    """Take up to ``limit`` due messages of ``connectors`` (those enabled and not paused) in
    one short transaction, soonest first; an empty list when nothing is due."""
    now = now or utcnow()
    if not connectors:
        return []
    with use_case():
        bookkeeping_durable_later()
        messages = db.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.status.in_(("pending", "in_flight")),
                OutboxMessage.next_attempt_at <= now,
                OutboxMessage.connector.in_(sorted(connectors)),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        claimed = []
        for message in messages:
            claim = f"{worker_name}:{uuid.uuid4().hex[:12]}"
            message.status = "in_flight"
            message.attempts += 1
            message.leased_by = claim
            message.next_attempt_at = now + timedelta(seconds=lease_seconds)
            message.updated_at = now
            claimed.append(
                Claimed(
                    id=message.id,
                    connector=message.connector,
                    operation=message.operation,
                    payload=message.payload,
                    idempotency_key=message.idempotency_key,
                    attempts=message.attempts,
                    claim=claim,
                )
            )
        return claimed


def claim_next(worker_name: str, connectors, **options) -> Claimed | None:
    """The next due message alone (``claim_due`` with a limit of one), or None."""
    claimed = claim_due(worker_name, connectors, limit=1, **options)
    return claimed[0] if claimed else None


def bookkeeping_durable_later() -> None:
    """Let this transaction commit without waiting for its WAL flush (PostgreSQL's
    ``synchronous_commit = off``, for this transaction only).

    For the queue's own bookkeeping (a claim, an outcome), where losing the last moments of
    commits in a server crash costs at most one more delivery, which at-least-once delivery
    allows anyway: a lost claim leaves the message due, a lost outcome leaves it in flight
    until its lease ends. Never for a business change or its message: those commit durably.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def backoff_seconds(attempts: int, *, rng: random.Random | None = None) -> float:
    """How long to wait after the ``attempts``-th failed try (full jitter, at least 1 s)."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return max(1.0, (rng or random).uniform(0, ceiling))


def _finish(claimed: Claimed, *, outcome: Outcome | None = None, **values) -> bool:
    """Record an outcome if the claim still holds the message (True), else leave it to the
    worker that holds it now (False). A final ``outcome`` goes to its operation's handler in
    the same transaction."""
    now = utcnow()
    handler = _outcome_handlers.get(claimed.operation) if outcome is not None else None
    with use_case():
        if handler is None:  # a domain's change rides along otherwise: that commits durably
            bookkeeping_durable_later()
        done = db.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == claimed.id,
                OutboxMessage.status == "in_flight",
                OutboxMessage.leased_by == claimed.claim,
            )
            .values(updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            return False
        if handler is not None:
            handler(outcome)
        return True


def _outcome(claimed: Claimed, status: str, result=None, error=None) -> Outcome:
    return Outcome(claimed.id, claimed.connector, claimed.operation, status, result, error)


def mark_delivered(claimed: Claimed, result: dict | None) -> bool:
    return _finish(
        claimed,
        outcome=_outcome(claimed, "delivered", result=result),
        status="delivered",
        delivered_at=utcnow(),
        result=result,
        leased_by=None,
        last_error=None,
    )


def mark_failed(
    claimed: Claimed,
    error: str,
    *,
    permanent: bool,
    max_attempts: int,
    retry_after: float | None = None,
) -> str:
    """Record a failed try; returns the message's new status ("pending" to retry later,
    "failed" when the vendor refused it as it is, "dead" when out of attempts)."""
    if permanent:
        status, wait = "failed", 0.0
    elif claimed.attempts >= max_attempts:
        status, wait = "dead", 0.0
    else:
        status = "pending"
        wait = max(retry_after or 0.0, backoff_seconds(claimed.attempts))
    final = _outcome(claimed, status, error=error) if status != "pending" else None
    recorded = _finish(
        claimed,
        outcome=final,
        status=status,
        next_attempt_at=utcnow() + timedelta(seconds=wait),
        last_error=error[:LAST_ERROR_MAX_CHARS],
        leased_by=None,
    )
    return status if recorded else "in_flight"


def release(claimed: Claimed) -> bool:
    """Give a claimed message back untried (a worker stopping): due at once, the try not
    counted."""
    return _finish(
        claimed,
        status="pending",
        attempts=claimed.attempts - 1,
        next_attempt_at=utcnow(),
        leased_by=None,
    )


REPLAYABLE = ("failed", "dead")


def requeue(message: OutboxMessage) -> None:
    """Make a failed or dead message pending now, attempts counted afresh, keeping its
    idempotency key (the receiver dedupes on it); flushes only: the caller's use case
    audits who asked (an admin's replay, a prescriber's retry).

    One conditional UPDATE (on the status in the database, not the one read earlier): a
    worker or a print that changed the message meanwhile makes it refused, never overwritten.
    """
    db.session.flush()
    now = utcnow()
    done = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.status.in_(REPLAYABLE))
        .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(message)
    if done.rowcount != 1:
        raise Refused(
            f"Only failed or dead messages can be sent again; this one is {message.status}."
        )


def replay(actor, message_id: int) -> OutboxMessage:
    """Send a failed or dead message again (an admin's decision, audited): pending now,
    attempts counted afresh."""
    with use_case():
        message = db.session.get(OutboxMessage, message_id)
        if message is None:
            raise Refused("No such message.")
        requeue(message)
        audit.record(
            actor,
            "integrations.message_replayed",
            obj=message,
            detail=f"{message.connector} {message.operation}",
            category="integrations",
        )
        return message

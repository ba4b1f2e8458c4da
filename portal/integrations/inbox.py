"""The inbox: what vendors push to us (webhooks), stored before it is acknowledged, processed
afterwards by the worker from the stored copy.

Storing first means an acknowledged event is never lost (a crash after the 2xx finds it in
the table); processing later means the sender's request does no work of ours (and waits for
no vendor call). The sender's event id is unique per connector, so a resent event is
acknowledged and processed once. A domain registers the handler that turns a kind of
connector's events into its own changes (``register_handler("eprescribing", ...)``); a
handler may call the vendor (e.g. to re-read a prescription) and runs its own use cases, so
it is called outside any transaction.
A handler that fails is retried with the outbox's back-off.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from portal.extensions import db
from portal.integrations.base import IntegrationError
from portal.integrations.models import InboxMessage, WebhookRefusal
from portal.integrations.outbox import backoff_seconds, bookkeeping_durable_later
from portal.timeutil import utcnow
from portal.transaction import Refused, end_read, use_case

log = logging.getLogger(__name__)

PROCESSING_LEASE_SECONDS = 120.0
MAX_ATTEMPTS = 8

# connector kind -> handler(connector instance, event type, data) -> patient id or None
Handler = Callable[[Any, str, dict], int | None]
_handlers: dict[str, Handler] = {}


def register_handler(kind: str, handler: Handler) -> None:
    """Let a domain process the events of every connector of a kind (one handler a kind)."""
    _handlers[kind] = handler


def unregister_handler(kind: str) -> None:
    _handlers.pop(kind, None)


@dataclass(frozen=True)
class Accepted:
    message_id: int
    duplicate: bool


def accept(connector: str, event_id: str, event_type: str | None, body: str) -> Accepted:
    """Store a verified, well-formed event; a resent one (its event id already stored) is
    recognised by the unique key, so the common case costs one insert."""
    return _store(connector, event_id, body, status="received", event_type=event_type)


def reject(connector: str, event_id: str, body: str, reason: str) -> Accepted:
    """Store a verified event that cannot be processed (malformed), with the reason."""
    return _store(connector, event_id, body, status="rejected", reason=reason[:500])


def _store(connector: str, event_id: str, body: str, **values) -> Accepted:
    now = utcnow()
    event_type = values.pop("event_type", None)
    message = InboxMessage(
        connector=connector,
        event_id=event_id,
        event_type=(event_type or "")[:64] or None,
        body=body,
        attempts=0,
        next_attempt_at=now,
        received_at=now,
        **values,
    )
    try:
        with use_case(conflict=Refused("duplicate")):
            db.session.add(message)
            db.session.flush()
            return Accepted(message.id, duplicate=False)
    except Refused:  # stored before (a resend), or by a copy that arrived at the same time
        found = db.session.scalar(
            select(InboxMessage.id).where(
                InboxMessage.connector == connector, InboxMessage.event_id == event_id
            )
        )
        end_read()
        return Accepted(found, duplicate=True)


def count_refusal(connector: str, reason: str) -> None:
    """Count a request refused before storing (forged, stale, badly signed, too large)."""
    with use_case():
        db.session.add(WebhookRefusal(connector=connector, refused_at=utcnow(), reason=reason))


@dataclass(frozen=True)
class _Claimed:
    id: int
    connector: str
    body: str
    attempts: int
    claim: str


def _claim_next(connectors: frozenset[str], now: datetime) -> _Claimed | None:
    with use_case():
        bookkeeping_durable_later()
        message = db.session.scalars(
            select(InboxMessage)
            .where(
                InboxMessage.status.in_(("received", "failed")),
                InboxMessage.next_attempt_at <= now,
                InboxMessage.connector.in_(sorted(connectors)),
            )
            .order_by(InboxMessage.next_attempt_at, InboxMessage.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if message is None:
            return None
        message.attempts += 1
        # Leased like an outbox message: a worker that dies mid-processing lets it go then.
        message.next_attempt_at = now + timedelta(seconds=PROCESSING_LEASE_SECONDS)
        message.leased_by = uuid.uuid4().hex
        return _Claimed(
            message.id, message.connector, message.body, message.attempts, message.leased_by
        )


def _finish(claimed: _Claimed, **values) -> None:
    with use_case():
        bookkeeping_durable_later()
        db.session.execute(
            update(InboxMessage)
            .where(InboxMessage.id == claimed.id, InboxMessage.leased_by == claimed.claim)
            .values(leased_by=None, **values)
            .execution_options(synchronize_session=False)
        )


def process_due(connectors: dict[str, Any], *, limit: int = 100) -> tuple[int, int]:
    """Process due events of these (enabled) connectors; returns (processed, failed)."""
    processed = failed = 0
    now = utcnow()
    names = frozenset(name for name, connector in connectors.items() if connector.kind in _handlers)
    for _ in range(limit):
        claimed = _claim_next(names, now) if names else None
        if claimed is None:
            break
        connector = connectors[claimed.connector]
        try:
            event_type, data = connector.parse_webhook(claimed.body)
            patient_id = _handlers[connector.kind](connector, event_type, data)
        except Exception as error:  # retried later, with back-off
            status = "failed" if claimed.attempts < MAX_ATTEMPTS else "rejected"
            # An IntegrationError's words are safe to keep; anything else is named by type
            # only (its text could carry patient data).
            said = str(error) if isinstance(error, IntegrationError) else type(error).__name__
            _finish(
                claimed,
                status=status,
                reason=f"processing failed: {said}"[:500],
                next_attempt_at=utcnow() + timedelta(seconds=backoff_seconds(claimed.attempts)),
            )
            log.warning(
                "inbox message %s (%s) try %s failed: %s",
                claimed.id,
                claimed.connector,
                claimed.attempts,
                type(error).__name__,
            )
            failed += 1
            continue
        _finish(
            claimed, status="processed", reason=None, processed_at=utcnow(), patient_id=patient_id
        )
        processed += 1
    return processed, failed

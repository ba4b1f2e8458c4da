"""Writing and verifying the audit trail.

``record`` adds an event to the caller's transaction, so the event and the change it records
commit together or not at all. The chain is extended under a lock: a transaction-scoped
advisory lock on PostgreSQL, the write lock of ``BEGIN IMMEDIATE`` on SQLite. Concurrent
writers therefore queue for the head of the chain instead of forking it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text

from portal.actors import Actor
from portal.audit.models import DETAIL_MAX_CHARS, AuditEvent
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import use_case

GENESIS_HASH = "0" * 64
OUTCOMES = ("success", "denied", "error")
# Any constant will do; it names the lock that serialises writers of the chain.
_CHAIN_LOCK_KEY = 7_300_115_001

HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "user_id",
    "username",
    "user_roles",
    "action",
    "patient_id",
    "object_type",
    "object_id",
    "category",
    "source_address",
    "outcome",
    "detail",
    "previous_hash",
)


def _format_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compute_hash(fields: dict) -> str:
    """SHA-256 over the event's fields (canonical JSON) including the previous hash."""
    canonical = {}
    for name in HASHED_FIELDS:
        value = fields[name]
        canonical[name] = _format_time(value) if isinstance(value, datetime) else value
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _lock_chain_head() -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})
    # SQLite: every transaction starts with BEGIN IMMEDIATE, so this one already holds the lock.


def record(
    actor: Actor,
    action: str,
    *,
    patient=None,
    patient_id: int | None = None,
    obj=None,
    object_type: str | None = None,
    object_id=None,
    category: str | None = None,
    outcome: str = "success",
    detail: str | None = None,
) -> None:
    """Append an event to the current transaction: it commits with the change it records.

    ``actor`` says who, and from where (``actor.source``): a person, ``SYSTEM``, an
    integration. ``obj`` fills the object type and id from a model instance. ``detail``
    must never hold patient data: ids and codes only.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    if not isinstance(actor, Actor):
        raise TypeError("audit.record needs an Actor (portal.actors), not a user row")
    if obj is not None:
        db.session.flush()  # new objects need their id before it is recorded
        object_type = object_type or obj.__tablename__
        object_id = obj.id
    if patient is not None:
        db.session.flush()
        patient_id = patient.id

    _lock_chain_head()
    event = _chained_event(
        _chain_head(),
        action=action,
        actor=actor,
        patient_id=patient_id,
        object_type=object_type,
        object_id=object_id,
        category=category,
        outcome=outcome,
        detail=detail,
    )
    db.session.add(event)
    db.session.flush()


def record_many(
    actor: Actor, action: str, entries: list[dict], *, category: str | None = None
) -> None:
    """Append one successful event per entry (keys ``patient_id``, ``object_type``,
    ``object_id``, ``detail``) to the current transaction, in one go: one lock, one read of
    the chain's head, one batched insert. For a page that shows many patients at once: each
    patient needs an event of their own for "who saw this patient" to find it, and this
    costs one round trip, not one per patient."""
    if not entries:
        return
    if not isinstance(actor, Actor):
        raise TypeError("audit.record_many needs an Actor (portal.actors), not a user row")
    _lock_chain_head()
    head = _chain_head()
    events = []
    for entry in entries:
        event = _chained_event(
            head,
            action=action,
            actor=actor,
            patient_id=entry.get("patient_id"),
            object_type=entry.get("object_type"),
            object_id=entry.get("object_id"),
            category=category,
            outcome="success",
            detail=entry.get("detail"),
        )
        events.append(event)
        head = (event.seq, event.entry_hash)
    db.session.add_all(events)
    db.session.flush()


def _chain_head() -> tuple[int, str] | None:
    """(seq, entry_hash) of the newest event; call with the chain's lock held."""
    head = db.session.execute(
        select(AuditEvent.seq, AuditEvent.entry_hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (head.seq, head.entry_hash) if head else None


def _chained_event(
    head: tuple[int, str] | None,
    *,
    action: str,
    actor: Actor,
    patient_id: int | None,
    object_type: str | None,
    object_id,
    category: str | None,
    outcome: str,
    detail: str | None,
) -> AuditEvent:
    """The event that follows ``head`` in the chain, its hash computed."""
    fields = {
        "seq": (head[0] + 1) if head else 1,
        "occurred_at": utcnow(),
        "user_id": actor.id,
        "username": actor.username,
        "user_roles": ",".join(actor.roles) or None,
        "action": action,
        "patient_id": patient_id,
        "object_type": object_type,
        "object_id": str(object_id) if object_id is not None else None,
        "category": category,
        "source_address": actor.source,
        "outcome": outcome,
        "detail": detail[:DETAIL_MAX_CHARS] if detail else None,
        "previous_hash": head[1] if head else GENESIS_HASH,
    }
    return AuditEvent(**fields, entry_hash=compute_hash(fields))


def latest_detail(user_id: int, action: str, since: datetime) -> str | None:
    """The ``detail`` of the user's latest ``action`` event since ``since``, if any: lets a
    reader that repeats itself (a polled page) record only what is new."""
    return db.session.scalar(
        select(AuditEvent.detail)
        .where(
            AuditEvent.user_id == user_id,
            AuditEvent.occurred_at >= since,
            AuditEvent.action == action,
        )
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(1)
    )


def record_denied(actor: Actor, endpoint: str, permission: str | None) -> None:
    """Record a refused request in a transaction of its own (the request itself is aborted)."""
    with use_case():
        record(
            actor,
            "access.denied",
            outcome="denied",
            object_type="endpoint",
            object_id=endpoint,
            detail=f"needs {permission or 'an undeclared permission'}",
        )


@dataclass
class ChainProblem:
    seq: int | None
    event_id: int | None
    message: str

    def __str__(self) -> str:
        return self.message


def verify_chain(batch_size: int = 5000) -> tuple[int, ChainProblem | None]:
    """Walk the whole chain in order; return (events checked, first problem or None)."""
    expected_seq = 1
    previous_hash = GENESIS_HASH
    checked = 0
    query = select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch_size)
    for event in db.session.scalars(query):
        fields = {name: getattr(event, name) for name in HASHED_FIELDS}
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                missing = (
                    f"{expected_seq}"
                    if event.seq == expected_seq + 1
                    else (f"{expected_seq}-{event.seq - 1}")
                )
                message = f"event #{missing} removed (the chain jumps to #{event.seq})"
            else:
                message = f"event #{event.seq} (id {event.id}) inserted out of order"
            return checked, ChainProblem(event.seq, event.id, message)
        if event.previous_hash != previous_hash:
            return checked, ChainProblem(
                event.seq,
                event.id,
                f"event #{event.seq} (id {event.id}) does not follow event #{event.seq - 1}: "
                "an event was inserted, replaced or altered",
            )
        if compute_hash(fields) != event.entry_hash:
            return checked, ChainProblem(
                event.seq,
                event.id,
                f"event #{event.seq} (id {event.id}) was altered: its hash does not match "
                "its fields",
            )
        previous_hash = event.entry_hash
        expected_seq += 1
        checked += 1
    return checked, None

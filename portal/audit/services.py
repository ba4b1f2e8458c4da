"""Writing the audit trail.

``record`` adds an event to the caller's transaction, so the event and the change it records
commit together or not at all. Writing an event takes no lock and reads nothing: it is one
INSERT of the event's fields and their MAC (``portal.audit.integrity``). Every patient page
view writes one, so this is the cost that bounds how many pages a deployment can serve:
before, each writer locked the head of a hash chain, read it and linked to it, and writers
queued behind that one lock however many there were (on PostgreSQL, fewer events per second
with 16 threads than with one). Ordering the events into a chain is left to the sealer
(``portal.audit.sealing``), a few seconds later, in one place, in batches.

The MAC is what protects an event until, and after, it is sealed: it is keyed with the
audit key, which the database does not hold, so a row altered or forged in the database no
longer matches its MAC, and the sealer and ``audit verify`` say so.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, inspect, select

from portal.actors import Actor
from portal.audit import integrity
from portal.audit.models import DETAIL_MAX_CHARS, AuditEvent
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import use_case

OUTCOMES = ("success", "denied", "error")
_TABLE = AuditEvent.__table__


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
        object_type = object_type or obj.__tablename__
        object_id = _id_of(obj)
    if patient is not None:
        patient_id = _id_of(patient)
    row = event_row(
        actor,
        action,
        utcnow(),
        patient_id=patient_id,
        object_type=object_type,
        object_id=object_id,
        category=category,
        outcome=outcome,
        detail=detail,
    )
    db.session.execute(insert(_TABLE), row)


def record_many(
    actor: Actor, action: str, entries: list[dict], *, category: str | None = None
) -> None:
    """Append one successful event per entry (keys ``patient_id``, ``object_type``,
    ``object_id``, ``detail``, and ``action`` when it is not ``action``) to the current
    transaction, in one INSERT, in the entries' order. For a page that shows many patients
    at once: each patient needs an event of their own for "who saw this patient" to find it,
    and this costs one round trip, not one per patient; and for a batch of work (the lab
    filer's), whose events differ in their action. Each event is the one ``record`` would
    write (its own nonce and MAC, no seq: the sealer chains them as any other)."""
    if not entries:
        return
    if not isinstance(actor, Actor):
        raise TypeError("audit.record_many needs an Actor (portal.actors), not a user row")
    now = utcnow()
    rows = [
        event_row(
            actor,
            entry.get("action", action),
            now,
            patient_id=entry.get("patient_id"),
            object_type=entry.get("object_type"),
            object_id=entry.get("object_id"),
            category=category,
            outcome="success",
            detail=entry.get("detail"),
        )
        for entry in entries
    ]
    # A plain executemany: psycopg sends it pipelined (one round trip, the statement parsed
    # once) and SQLite runs one prepared statement. A multi-row INSERT ... RETURNING looks
    # cheaper but is dearer on PostgreSQL: the driver rewrites every placeholder of the long
    # statement in Python, about 100 us of CPU a row against 16 (measured, 5,000 rows).
    db.session.execute(insert(_TABLE), rows)


def _id_of(instance) -> int | None:
    """A model instance's id, flushing first only when it has none yet (a new object).

    Read from the instance's identity, so an instance expired by the use case's fresh
    start is not reloaded just to be named.
    """
    state = inspect(instance, raiseerr=False)
    if state is None:  # not a mapped object: anything with an id
        return instance.id
    if state.identity is None:
        db.session.flush()
    return state.identity[0] if state.identity else None


def event_row(
    actor: Actor,
    action: str,
    occurred_at: datetime,
    *,
    patient_id=None,
    object_type: str | None = None,
    object_id=None,
    category: str | None = None,
    outcome: str = "success",
    detail: str | None = None,
) -> dict:
    """The columns of a new event, its MAC computed (not yet sealed: no ``seq``).

    Values are normalised to what the database gives back (ids as int and str, the detail
    cut to its column), so the MAC computed now is the MAC of the row as it will be read.
    """
    fields = {
        "occurred_at": occurred_at,
        "user_id": actor.id,
        "username": actor.username,
        "user_roles": ",".join(actor.roles) or None,
        "action": action,
        "patient_id": int(patient_id) if patient_id is not None else None,
        "object_type": object_type,
        "object_id": str(object_id) if object_id is not None else None,
        "category": category,
        "source": actor.source,
        "outcome": outcome,
        "detail": detail[:DETAIL_MAX_CHARS] if detail else None,
        "nonce": integrity.new_nonce(),
    }
    fields["event_mac"] = integrity.event_mac(integrity.current_keys(), fields)
    fields["scheme"] = integrity.SCHEME_KEYED
    return fields


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

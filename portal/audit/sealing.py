"""The sealer: gives written events their place in the chain, and writes checkpoints.

Writers only insert events with their MAC (``portal.audit.services``). Every second the
worker runs ``seal_pending``: it takes the events not sealed yet, in id order, checks each
one's MAC, numbers them on from the chain's head (``seq``) and links each to the one before
(``entry_hash = HMAC(chain key, previous entry_hash | seq | event_mac | seal_problem)``). One
sealer at a time, so the chain never forks: on PostgreSQL a transaction-scoped advisory
lock that a second sealer does not wait for (it skips; the holder is doing the work); on
SQLite the database's write lock, which every writing transaction holds anyway. Writers
never take either: the contention that used to be on every audited request is now on one
batch a second.

An event committed late, after events with higher ids were sealed (a long transaction),
is sealed by a later batch: seq order is the order of sealing, not of ids or times. What the
chain proves is that no sealed event was removed, added or changed since; ``occurred_at``
says when each happened.

An event whose MAC does not verify when the sealer reaches it (edited or forged in the
database in the seconds before sealing) is not left out, which would hide it, nor sealed as
if it were sound: it is sealed with ``seal_problem`` set, which the link covers, and
``audit verify`` reports it for as long as the trail exists.

Sealing and checkpoints are not themselves audited: they change nothing a person did or
saw, they leave their own evidence (the seal columns, the checkpoint file), and an event
per seal would give the sealer an event to seal every second, forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import bindparam, select, text, update

from portal.audit import checkpoints, integrity
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import end_read, use_case

# Any constant will do; it names the lock that lets one sealer at a time extend the chain.
SEALER_LOCK_KEY = 7_300_115_002
DEFAULT_BATCH = 1000

_TABLE = AuditEvent.__table__
_PENDING_COLUMNS = [_TABLE.c[name] for name in ("id", "scheme", "event_mac", *integrity.MAC_FIELDS)]
# A row with no seq but other seal values was never written by ``record``: the guard would
# refuse to seal it, and it must not stall the sealer. It is left for verify to name.
_NO_SEAL_VALUES = (
    _TABLE.c.previous_hash.is_(None),
    _TABLE.c.entry_hash.is_(None),
    _TABLE.c.seal_problem.is_(None),
)
# The seal, on PostgreSQL in one statement per batch (arrays unnested into rows): a batch of a
# thousand events is one round trip and one plan, not a thousand of each.
_SEAL_ARRAYS = text(
    "UPDATE audit_events AS e SET seq = v.seq, previous_hash = v.previous_hash, "
    "entry_hash = v.entry_hash, seal_problem = v.seal_problem "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:seqs AS bigint[]), "
    "CAST(:previous AS varchar[]), CAST(:entries AS varchar[]), CAST(:problems AS varchar[])) "
    "AS v(id, seq, previous_hash, entry_hash, seal_problem) "
    "WHERE e.id = v.id AND e.seq IS NULL"
)
_SEAL = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("event_id"), _TABLE.c.seq.is_(None))
    .values(
        seq=bindparam("new_seq"),
        previous_hash=bindparam("new_previous_hash"),
        entry_hash=bindparam("new_entry_hash"),
        seal_problem=bindparam("new_seal_problem"),
    )
)


@dataclass
class SealResult:
    """What one ``seal_pending`` did."""

    sealed: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    problem_ids: list[int] = field(default_factory=list)  # sealed with seal_problem set
    skipped: bool = False  # another sealer held the lock


def chain_head() -> tuple[int, str] | None:
    """(seq, entry_hash) of the newest sealed event, or None when nothing is sealed."""
    head = db.session.execute(
        select(_TABLE.c.seq, _TABLE.c.entry_hash)
        .where(_TABLE.c.seq.is_not(None))
        .order_by(_TABLE.c.seq.desc())
        .limit(1)
    ).first()
    return (head.seq, head.entry_hash) if head else None


def seal_pending(batch: int = DEFAULT_BATCH, *, wait: bool = False) -> SealResult:
    """Seal up to ``batch`` unsealed events, oldest id first, in one transaction.

    ``wait``: on PostgreSQL, wait for a sealer that holds the lock instead of skipping
    (``checkpoint`` wants everything sealed before it notes the head).
    """
    keys = integrity.current_keys()
    with use_case():
        if not _lock_sealer(wait):
            return SealResult(skipped=True)
        _scan_pending_in_id_order()
        pending = db.session.execute(
            select(*_PENDING_COLUMNS)
            .where(_TABLE.c.seq.is_(None), *_NO_SEAL_VALUES)
            .order_by(_TABLE.c.id)
            .limit(batch)
        ).all()
        if not pending:
            return SealResult()
        head = chain_head()
        seq, previous = head if head else (0, integrity.GENESIS_HASH)
        result = SealResult(first_seq=seq + 1)
        seals = []
        for row in pending:
            seq += 1
            problem = None if _mac_verifies(keys, row) else integrity.PROBLEM_BAD_MAC
            entry_hash = integrity.chain_link(keys, previous, seq, row.event_mac, problem)
            seals.append(
                {
                    "event_id": row.id,
                    "new_seq": seq,
                    "new_previous_hash": previous,
                    "new_entry_hash": entry_hash,
                    "new_seal_problem": problem,
                }
            )
            if problem:
                result.problem_ids.append(row.id)
            previous = entry_hash
        _write_seals(seals)
    result.sealed, result.last_seq = len(seals), seq
    return result


def seal_all(batch: int = DEFAULT_BATCH, *, wait: bool = False) -> SealResult:
    """Seal batch after batch until none is left (or another sealer has the lock)."""
    total = SealResult()
    while True:
        result = seal_pending(batch, wait=wait)
        total.skipped = result.skipped
        if result.sealed:
            total.sealed += result.sealed
            total.first_seq = total.first_seq or result.first_seq
            total.last_seq = result.last_seq
            total.problem_ids += result.problem_ids
        if result.sealed < batch:
            return total


def _lock_sealer(wait: bool) -> bool:
    if db.session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: this use case holds the database's write lock already
    if wait:
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEALER_LOCK_KEY})
        return True
    return bool(
        db.session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SEALER_LOCK_KEY})
    )


def _write_seals(seals: list[dict]) -> None:
    if db.session.get_bind().dialect.name != "postgresql":
        db.session.execute(_SEAL, seals)
        return
    db.session.execute(
        _SEAL_ARRAYS,
        {
            "ids": [seal["event_id"] for seal in seals],
            "seqs": [seal["new_seq"] for seal in seals],
            "previous": [seal["new_previous_hash"] for seal in seals],
            "entries": [seal["new_entry_hash"] for seal in seals],
            "problems": [seal["new_seal_problem"] for seal in seals],
        },
    )


def _scan_pending_in_id_order() -> None:
    """PostgreSQL: read the pending events by walking the partial index in id order.

    Every sealed event leaves a dead entry in that index until vacuum removes it, hours later
    on a big table. PostgreSQL's planner, which expects few pending rows, would otherwise use a
    bitmap scan, which checks every dead entry against the table on every run, so each run
    would cost more than the last. A plain index scan marks the dead entries it meets as dead
    in the index, and later runs skip them without reading the table.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL enable_bitmapscan = off"))


def _mac_verifies(keys: integrity.AuditKeys, row) -> bool:
    if row.scheme != integrity.SCHEME_KEYED:
        return False  # an unsealed "legacy" event cannot exist: 0008 found them all sealed
    return integrity.same(integrity.event_mac(keys, row._mapping), row.event_mac)


def checkpoint(*, skip_unchanged: bool = False) -> checkpoints.Checkpoint | None:
    """Seal what is pending, then append the chain's head to the checkpoint file.

    Returns the checkpoint written, or None when the trail is empty (or, with
    ``skip_unchanged``, when the file's last line already names this head: the worker does
    not repeat itself through a quiet night).
    """
    seal_all(wait=True)
    head = chain_head()
    end_read()  # end the read: a SQLite reader must not linger
    if head is None:
        return None
    path = checkpoints.checkpoint_path()
    if skip_unchanged:
        latest = checkpoints.last(path)
        if isinstance(latest, checkpoints.Checkpoint) and (latest.seq, latest.entry_hash) == head:
            return None
    return checkpoints.append(
        path, integrity.current_keys(), head[0], head[1], integrity.format_time(utcnow())
    )

"""``audit verify``: check every event, every link, the checkpoints and the sealer's lag.

What is checked, and what each check catches:

1. The sealed chain, in seq order, a batch at a time (memory stays flat over millions of
   events), each event once:
   - seq numbers are consecutive from 1: a gap is a removed event;
   - ``previous_hash`` equals the previous event's ``entry_hash``: an event removed and the
     rest renumbered, or an event slipped in;
   - a keyed event's ``event_mac`` matches its fields under the audit key: a field edited
     in the database (a re-attributed user, a moved time), or a forged row;
   - a keyed event's ``entry_hash`` is the HMAC link of its previous hash, seq, MAC and
     seal problem: a chain recomputed by someone without the key (with plain SHA-256 or
     with a key of their own);
   - an event the sealer found with a bad MAC (``seal_problem``) is reported: it was edited
     or forged before it was sealed;
   - legacy events (written before the trail was keyed) are checked the old way, their
     unkeyed SHA-256, and may only come before the first keyed event. The first keyed
     link follows the legacy head, so the keyed chain and the checkpoints bind them too.
2. The checkpoint file: every line must carry a valid MAC; the chain must pass through
   every checkpoint with the same hash at its seq, and reach the highest one. This is what
   catches deleting the newest events, or rewriting the chain with the key's help, which
   leave a chain that is intact in itself.
3. Events not sealed yet: their MACs (an edit before sealing shows now, not only once
   sealed), how many there are and how long the oldest has waited. Older than the grace
   period (``AUDIT_SEAL_GRACE_MINUTES``, 5) means the sealer is not running: a problem.
4. Copies: two events with one MAC (each has a random nonce) are a genuine event replayed.

No checkpoint at all: while the chain is younger than a checkpoint interval plus the grace
(a new installation before the worker's first checkpoint) that is a warning; after that it
is a problem, since removing the newest events could no longer be detected.

Each event is reported at most once, and the walk goes on after a problem (links are
checked against the stored hashes, so one problem does not cascade): the report lists the
first ``MAX_PROBLEMS`` and counts the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select

from portal.audit import checkpoints, integrity
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import end_read

MAX_PROBLEMS = 50
DEFAULT_GRACE_MINUTES = 5
DEFAULT_CHECKPOINT_MINUTES = 5

_TABLE = AuditEvent.__table__
_COLUMNS = [
    _TABLE.c[name]
    for name in (
        "id",
        "seq",
        "scheme",
        "event_mac",
        "previous_hash",
        "entry_hash",
        "seal_problem",
        *integrity.MAC_FIELDS,
    )
]


@dataclass
class Report:
    """What ``verify`` found. ``problems`` (in the order found) empty means intact."""

    sealed: int = 0
    legacy: int = 0
    head_seq: int = 0
    unsealed: int = 0
    oldest_unsealed: datetime | None = None
    checkpoint_file: Path | None = None
    checkpoints: int = 0
    latest_checkpoint: checkpoints.Checkpoint | None = None
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verified(self) -> int:
        return self.sealed + self.unsealed

    def problem(self, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)
        else:
            self.more_problems += 1


def verify(*, batch_size: int = 5000, now: datetime | None = None) -> Report:
    """Check the whole trail (see the module notes); read-only, in short transactions."""
    now = now or utcnow()
    config = current_app.config
    grace = timedelta(minutes=config.get("AUDIT_SEAL_GRACE_MINUTES", DEFAULT_GRACE_MINUTES))
    interval = timedelta(minutes=config.get("AUDIT_CHECKPOINT_MINUTES", DEFAULT_CHECKPOINT_MINUTES))
    keys = integrity.current_keys()
    report = Report(checkpoint_file=checkpoints.checkpoint_path())
    by_seq = _read_checkpoints(report, keys)
    _walk_chain(report, keys, by_seq, batch_size)
    _check_reach(report, by_seq, interval + grace, now)
    _check_unsealed(report, keys, grace, now, batch_size)
    _check_copies(report)
    return report


def _read_checkpoints(report: Report, keys) -> dict[int, checkpoints.Checkpoint]:
    """The file's valid checkpoints by seq; a line that does not verify is a problem."""
    path = report.checkpoint_file
    by_seq: dict[int, checkpoints.Checkpoint] = {}
    if not path.exists():
        return by_seq
    try:
        entries = list(checkpoints.read(path))
    except OSError as error:
        report.problem(f"checkpoint file {path} cannot be read: {error.strerror}")
        return by_seq
    for entry in entries:
        if isinstance(entry, checkpoints.BadLine):
            report.problem(f"checkpoint line {entry.line} of {path} is not a checkpoint")
            continue
        if not entry.verifies(keys):
            if entry.key_id != keys.key_id:
                report.problem(
                    f"checkpoint line {entry.line} of {path} was written with another audit "
                    f"key (key id {entry.key_id}; AUDIT_KEY's is {keys.key_id}), or forged"
                )
            else:
                report.problem(
                    f"checkpoint line {entry.line} of {path} does not verify: "
                    "it was forged or altered"
                )
            continue
        earlier = by_seq.get(entry.seq)
        if earlier is not None and earlier.entry_hash != entry.entry_hash:
            report.problem(
                f"checkpoint lines {earlier.line} and {entry.line} of {path} disagree about "
                f"event #{entry.seq}: the chain was sealed twice (restored from a backup?)"
            )
            continue
        by_seq[entry.seq] = entry
        report.checkpoints += 1
        if report.latest_checkpoint is None or entry.seq >= report.latest_checkpoint.seq:
            report.latest_checkpoint = entry
    return by_seq


def _walk_chain(report: Report, keys, by_seq: dict, batch_size: int) -> None:
    expected_seq = 1
    previous_hash = integrity.GENESIS_HASH
    keyed_from: int | None = None  # seq of the first keyed event
    while True:
        rows = db.session.execute(
            select(*_COLUMNS)
            .where(_TABLE.c.seq >= expected_seq)
            .order_by(_TABLE.c.seq)
            .limit(batch_size)
        ).all()
        end_read()  # one short read per batch: no snapshot held for the whole walk
        for row in rows:
            name = f"event #{row.seq} (id {row.id})"
            problem = None
            if row.seq < expected_seq:
                problem = f"{name} repeats seq #{row.seq}: it was inserted"
            elif row.seq > expected_seq:
                gap = (
                    f"#{expected_seq}"
                    if row.seq == expected_seq + 1
                    else f"#{expected_seq}-{row.seq - 1}"
                )
                removed = "event" if row.seq == expected_seq + 1 else "events"
                problem = f"{removed} {gap} removed (the chain jumps to #{row.seq})"
            elif row.previous_hash != previous_hash:
                problem = (
                    f"{name} does not follow event #{row.seq - 1}: "
                    "an event was inserted, replaced or removed"
                )
            elif row.scheme == integrity.SCHEME_LEGACY:
                report.legacy += 1
                if keyed_from is not None:
                    problem = (
                        f"{name} claims the legacy (unkeyed) scheme after the keyed chain "
                        f"began at #{keyed_from}: it was forged"
                    )
                elif integrity.legacy_hash(_legacy_fields(row)) != row.entry_hash:
                    problem = f"{name} was altered: its hash does not match its fields"
            elif row.scheme == integrity.SCHEME_KEYED:
                keyed_from = keyed_from or row.seq
                problem = _keyed_problem(keys, row, name)
            else:
                problem = f"{name} has an unknown scheme {row.scheme!r}: it was forged"
            checkpoint = by_seq.get(row.seq)
            if problem is None and checkpoint and checkpoint.entry_hash != row.entry_hash:
                problem = (
                    f"{name} does not match the checkpoint of {checkpoint.at} "
                    f"(line {checkpoint.line}): the chain was rewritten"
                )
            if problem:
                report.problem(problem)
            report.sealed += 1
            report.head_seq = row.seq
            expected_seq = row.seq + 1
            previous_hash = row.entry_hash
        if len(rows) < batch_size:
            break
    sealed = db.session.scalar(select(func.count()).where(_TABLE.c.seq.is_not(None)))
    end_read()
    if sealed > report.sealed:
        report.problem(
            f"{sealed - report.sealed} sealed events share a seq with another event: "
            "they were inserted"
        )


def _keyed_problem(keys, row, name: str) -> str | None:
    link = integrity.chain_link(keys, row.previous_hash, row.seq, row.event_mac, row.seal_problem)
    if not integrity.same(link, row.entry_hash):
        return (
            f"{name} has a wrong chain hash: the chain was rewritten without the audit key, "
            "or the event's seal was altered"
        )
    if row.seal_problem:
        return (
            f"{name} was altered or forged before it was sealed: its MAC did not match its "
            "fields when the sealer reached it"
        )
    if not integrity.same(integrity.event_mac(keys, row._mapping), row.event_mac):
        return f"{name} was altered: its MAC does not match its fields (or it was forged)"
    return None


def _legacy_fields(row) -> dict:
    fields = {
        name: getattr(row, name) for name in integrity.LEGACY_FIELDS if name != "source_address"
    }
    fields["source_address"] = row.source
    return fields


def _check_reach(report: Report, by_seq: dict, allowed_age: timedelta, now: datetime) -> None:
    """The chain must reach the highest checkpoint; no checkpoint at all must be young."""
    latest = report.latest_checkpoint
    path = report.checkpoint_file
    if latest is not None:
        if latest.seq > report.head_seq:
            first = report.head_seq + 1
            missing = f"#{first}" if first == latest.seq else f"#{first}-{latest.seq}"
            report.problem(
                f"the chain ends at #{report.head_seq} but the checkpoint of {latest.at} (line "
                f"{latest.line} of {path}) recorded #{latest.seq}: events {missing} were removed"
            )
        return
    if report.head_seq == 0:
        return
    first_at = db.session.scalar(select(_TABLE.c.occurred_at).where(_TABLE.c.seq == 1))
    end_read()
    minutes = int(allowed_age.total_seconds() // 60)
    if first_at is not None and now - first_at <= allowed_age:
        report.warnings.append(
            f"no checkpoint yet ({path} is missing or empty): the chain began less than "
            f"{minutes} minutes ago; the worker writes one at start and then periodically"
        )
        return
    report.problem(
        f"no checkpoint ({path} is missing or empty) though the chain began more than "
        f"{minutes} minutes ago: removing the newest events could not be detected "
        "(the worker writes checkpoints; `flask audit checkpoint` writes one now)"
    )


def _check_unsealed(report: Report, keys, grace: timedelta, now: datetime, batch_size: int) -> None:
    count, oldest = db.session.execute(
        select(func.count(), func.min(_TABLE.c.occurred_at)).where(_TABLE.c.seq.is_(None))
    ).one()
    end_read()
    report.unsealed, report.oldest_unsealed = count, oldest
    after_id = 0
    while True:
        rows = db.session.execute(
            select(*_COLUMNS)
            .where(_TABLE.c.seq.is_(None), _TABLE.c.id > after_id)
            .order_by(_TABLE.c.id)
            .limit(batch_size)
        ).all()
        end_read()
        for row in rows:
            if row.previous_hash or row.entry_hash or row.seal_problem:
                report.problem(
                    f"unsealed event id {row.id} carries seal values but no seq: it was forged, "
                    "or its seq was removed"
                )
            elif row.scheme != integrity.SCHEME_KEYED or not integrity.same(
                integrity.event_mac(keys, row._mapping), row.event_mac
            ):
                report.problem(
                    f"unsealed event id {row.id} was altered or forged: its MAC does not match "
                    "its fields"
                )
        if len(rows) < batch_size:
            break
        after_id = rows[-1].id
    if count and oldest is not None and now - oldest > grace:
        waited = int((now - oldest).total_seconds() // 60)
        report.problem(
            f"{count} events wait to be sealed, the oldest for {waited} minutes: the sealer "
            "(`flask worker`) is not running"
        )


def _check_copies(report: Report) -> None:
    copies = db.session.execute(
        select(func.min(_TABLE.c.id), func.max(_TABLE.c.id), func.count())
        .where(_TABLE.c.event_mac.is_not(None))
        .group_by(_TABLE.c.event_mac)
        .having(func.count() > 1)
        .limit(MAX_PROBLEMS)
    ).all()
    end_read()
    for first_id, last_id, count in copies:
        others = "an event" if count == 2 else f"{count - 1} events"
        report.problem(
            f"event id {last_id} is a copy of event id {first_id} (the same MAC; {others} in "
            "all): a genuine event was replayed"
        )

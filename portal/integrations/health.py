"""How each connector is doing, read from the tables: its state, its last success and last
failure, what waits in the outbox, and today's webhooks.

One call answers for every connector at once in a fixed number of queries (six, however
many connectors and messages there are), each led by an index of the outbox, the inbox or
the refusals: the console's list page shows every connector's health without a query per
connector or per message. Nothing here reads a payload or a body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select

from portal.clinic.clock import clinic_today, day_bounds
from portal.clinic.services import current_clinic
from portal.extensions import db
from portal.integrations.models import (
    ConnectorSetting,
    InboxMessage,
    OutboxMessage,
    WebhookRefusal,
)
from portal.timeutil import utcnow

WAITING = ("pending", "in_flight")
NEEDS_A_PERSON = ("failed", "dead")
# The oldest waiting message: older than this is worth a look, older than the next is failing.
PENDING_ATTENTION = timedelta(minutes=5)
PENDING_FAILING = timedelta(hours=1)

# Levels, each with the word the console shows (the colour only repeats the word).
LEVEL_WORDS = {
    "ok": "Healthy",
    "attention": "Needs attention",
    "failing": "Failing",
    "off": "Off",
    "unconfigured": "Not set up",
}


@dataclass(frozen=True)
class Health:
    """One connector's state and figures, and a verdict with its reasons."""

    connector: str
    state: str  # "not configured", "enabled", "disabled", "paused"
    enabled_since: datetime | None
    last_success: datetime | None
    last_failure: datetime | None
    last_error: str | None
    pending: int  # waiting to be delivered (pending or in flight)
    oldest_pending_at: datetime | None
    failed: int
    dead: int
    webhooks_received: int
    webhooks_rejected: int
    webhooks_refused: int
    level: str
    reasons: tuple[str, ...]
    checked_at: datetime

    @property
    def word(self) -> str:
        return LEVEL_WORDS[self.level]

    @property
    def oldest_pending_age(self) -> timedelta | None:
        if self.oldest_pending_at is None:
            return None
        return max(timedelta(0), self.checked_at - self.oldest_pending_at)


def _state(setting: ConnectorSetting | None) -> str:
    if setting is None:
        return "not configured"
    if not setting.enabled:
        return "disabled"
    return "paused" if setting.paused else "enabled"


def _minutes(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def _verdict(state: str, figures: dict, now: datetime) -> tuple[str, tuple[str, ...]]:
    """The level and the reasons behind it: failing when messages wait for a person or the
    queue has been stuck for an hour; needs attention when delivery is paused, slow, or its
    latest try failed, or webhooks were turned away today."""
    if state == "not configured":
        return "unconfigured", ()
    failing, attention = [], []
    stuck = figures["failed"] + figures["dead"]
    if stuck:
        failing.append(f"{stuck} message(s) failed or dead, waiting for a replay")
    oldest = figures["oldest_pending_at"]
    if oldest is not None:
        age = now - oldest
        if age >= PENDING_FAILING:
            failing.append(f"oldest pending message waiting {_minutes(age)}")
        elif age >= PENDING_ATTENTION:
            attention.append(f"oldest pending message waiting {_minutes(age)}")
    if state == "disabled":
        return ("failing", tuple(failing)) if failing else ("off", ())
    if state == "paused":
        attention.append("delivery is paused")
    last_failure, last_success = figures["last_failure"], figures["last_success"]
    if last_failure is not None and (last_success is None or last_failure > last_success):
        attention.append("the latest delivery attempt failed")
    turned_away = figures["webhooks_rejected"] + figures["webhooks_refused"]
    if turned_away:
        attention.append(f"{turned_away} webhook(s) rejected or refused today")
    if failing:
        return "failing", tuple(failing + attention)
    if attention:
        return "attention", tuple(attention)
    return "ok", ()


def health_of(names: list[str], now: datetime | None = None) -> dict[str, Health]:
    """The health of each named connector (the clinic's settings, the outbox, today's
    webhooks on the clinic's calendar)."""
    now = now or utcnow()
    if not names:
        return {}
    clinic = current_clinic()
    settings = {}
    if clinic is not None:
        settings = {
            row.connector: row
            for row in db.session.scalars(
                select(ConnectorSetting).where(
                    ConnectorSetting.clinic_id == clinic.id,
                    ConnectorSetting.connector.in_(names),
                )
            )
        }
    figures = {
        name: {
            "pending": 0,
            "oldest_pending_at": None,
            "failed": 0,
            "dead": 0,
            "last_success": None,
            "last_failure": None,
            "last_error": None,
            "webhooks_received": 0,
            "webhooks_rejected": 0,
            "webhooks_refused": 0,
        }
        for name in names
    }
    _read_queue(names, figures)
    _read_last_success(names, figures)
    _read_last_failure(names, figures)
    _read_webhooks_today(names, figures, now)
    health = {}
    for name in names:
        setting = settings.get(name)
        state = _state(setting)
        level, reasons = _verdict(state, figures[name], now)
        health[name] = Health(
            connector=name,
            state=state,
            enabled_since=setting.enabled_at if setting is not None and setting.enabled else None,
            level=level,
            reasons=reasons,
            checked_at=now,
            **figures[name],
        )
    return health


def _read_queue(names: list[str], figures: dict) -> None:
    """Counts of the messages not delivered, by status (the (connector, status, created_at)
    index: delivered messages, however many, are not read)."""
    rows = db.session.execute(
        select(
            OutboxMessage.connector,
            OutboxMessage.status,
            func.count(),
            func.min(OutboxMessage.created_at),
        )
        .where(
            OutboxMessage.connector.in_(names),
            OutboxMessage.status.in_(WAITING + NEEDS_A_PERSON),
        )
        .group_by(OutboxMessage.connector, OutboxMessage.status)
    )
    for connector, status, count, oldest in rows:
        into = figures[connector]
        if status in WAITING:
            into["pending"] += count
            if into["oldest_pending_at"] is None or oldest < into["oldest_pending_at"]:
                into["oldest_pending_at"] = oldest
        else:
            into[status] = count


def _read_last_success(names: list[str], figures: dict) -> None:
    """When the newest delivered message was delivered: one row, a scalar subquery per
    connector, each one step down the (connector, status, created_at) index. Retries can
    deliver an older message after a newer one; the newest by creation is close enough for
    "is anything getting through" and never scans the delivered history."""
    latest = [
        select(OutboxMessage.delivered_at)
        .where(OutboxMessage.connector == name, OutboxMessage.status == "delivered")
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(1)
        .scalar_subquery()
        .label(f"c{position}")
        for position, name in enumerate(names)
    ]
    row = db.session.execute(select(*latest)).one()
    for name, delivered_at in zip(names, row, strict=True):
        figures[name]["last_success"] = delivered_at


def _read_last_failure(names: list[str], figures: dict) -> None:
    """The latest failed try of each connector and its error: a message failed or dead, or
    waiting for a retry after a failed try (a replayed one starts again at 0 attempts)."""
    failed_tries = (
        select(
            OutboxMessage.connector,
            OutboxMessage.updated_at,
            OutboxMessage.last_error,
            func.row_number()
            .over(
                partition_by=OutboxMessage.connector,
                order_by=(OutboxMessage.updated_at.desc(), OutboxMessage.id.desc()),
            )
            .label("newest"),
        )
        .where(
            OutboxMessage.connector.in_(names),
            OutboxMessage.last_error.is_not(None),
            or_(
                OutboxMessage.status.in_(NEEDS_A_PERSON),
                and_(OutboxMessage.status == "pending", OutboxMessage.attempts > 0),
            ),
        )
        .subquery()
    )
    rows = db.session.execute(
        select(
            failed_tries.c.connector, failed_tries.c.updated_at, failed_tries.c.last_error
        ).where(failed_tries.c.newest == 1)
    )
    for connector, at, error in rows:
        figures[connector]["last_failure"] = at
        figures[connector]["last_error"] = error


def _read_webhooks_today(names: list[str], figures: dict, now: datetime) -> None:
    """Webhooks of the clinic's day: stored (and of those, rejected as malformed), and
    refused before storing."""
    starts, ends = day_bounds(clinic_today(now))
    inbox = db.session.execute(
        select(
            InboxMessage.connector,
            func.count(),
            func.sum(case((InboxMessage.status == "rejected", 1), else_=0)),
        )
        .where(
            InboxMessage.connector.in_(names),
            InboxMessage.received_at >= starts,
            InboxMessage.received_at < ends,
        )
        .group_by(InboxMessage.connector)
    )
    for connector, received, rejected in inbox:
        figures[connector]["webhooks_received"] = received
        figures[connector]["webhooks_rejected"] = int(rejected or 0)
    refusals = db.session.execute(
        select(WebhookRefusal.connector, func.count())
        .where(
            WebhookRefusal.connector.in_(names),
            WebhookRefusal.refused_at >= starts,
            WebhookRefusal.refused_at < ends,
        )
        .group_by(WebhookRefusal.connector)
    )
    for connector, refused in refusals:
        figures[connector]["webhooks_refused"] = refused

"""Read-side helpers of the admin pages: who exists, and how many live sessions each has.

Changes to accounts go through ``portal.auth.services`` (one audited transaction each).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask import current_app
from sqlalchemy import func, select
from werkzeug.exceptions import NotFound

from portal.auth.models import ServerSession, User
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import Refused

# A last day of work is a date a person types: bounded like ids, so a slip of the keyboard
# (year 0202, 9999) is refused beside the field rather than stored or crashing a query.
EARLIEST_LAST_DAY = date(2000, 1, 1)
LAST_DAY_YEARS_AHEAD = 20


@dataclass
class UserRow:
    user: User
    live_sessions: int


def live_session_counts(user_ids: list[int] | None = None) -> dict[int, int]:
    """Sessions per user that are not ended, not idle too long and not past their lifetime.

    Idle sessions are only marked ended when next used, so "live" is decided here by time.
    """
    now = utcnow()
    config = current_app.config
    idle_since = now - timedelta(minutes=config["SESSION_IDLE_MINUTES"])
    born_after = now - timedelta(hours=config["SESSION_ABSOLUTE_HOURS"])
    query = (
        select(ServerSession.user_id, func.count())
        .where(
            ServerSession.user_id.is_not(None),
            ServerSession.ended_at.is_(None),
            ServerSession.last_seen_at >= idle_since,
            ServerSession.created_at >= born_after,
        )
        .group_by(ServerSession.user_id)
    )
    if user_ids is not None:
        query = query.where(ServerSession.user_id.in_(user_ids))
    return {user_id: count for user_id, count in db.session.execute(query)}


def list_users() -> list[UserRow]:
    """Every account, by username, with its live session count."""
    users = db.session.scalars(select(User).order_by(User.username)).all()
    counts = live_session_counts()
    return [UserRow(user, counts.get(user.id, 0)) for user in users]


def get_user_or_404(user_id: int) -> User:
    """The account with this id, or NotFound."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound()
    return user


def full_name_of(user_id: int | None) -> str:
    """The name an account shows under, or a dash when it is gone."""
    if user_id is None:
        return "—"
    return db.session.scalar(select(User.full_name).where(User.id == user_id)) or "—"


def bounded_last_day(value: date | None, today: date) -> date | None:
    """The last day of work as typed, refused beside its field when out of range."""
    if value is None:
        return None
    latest = today.replace(year=today.year + LAST_DAY_YEARS_AHEAD, day=min(today.day, 28))
    if not EARLIEST_LAST_DAY <= value <= latest:
        raise Refused(
            f"Type a date between {EARLIEST_LAST_DAY:%d %B %Y} and {latest:%d %B %Y}.",
            field="employment_ends_on",
        )
    return value

"""Calendar feeds: a provider's schedule as iCalendar at an unguessable address, for their
phone's calendar app. Only the token's hash is kept; revoking a feed ends its address.

Creating a feed, and choosing that it names patients, is the provider's own act: nobody
else ever holds its address (an administrator, who has no patient access, may only revoke
one). A feed answers only while its provider's account is enabled and holds the provider
role, checked each time it is read; disabling the account or removing the role also revokes
every feed at once (``when_access_withdrawn``), audited and told to the provider.

Creating and revoking are use cases with their audit events (category "appointments"); a
feed that names patients records each time it is read.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import NotFound

from portal.actors import integration
from portal.audit import services as audit
from portal.auth.models import User
from portal.auth.services import (
    ACCESS_DISABLED,
    add_account_notice,
    employment_ended,
    when_access_withdrawn,
)
from portal.clinic.clock import clinic_today
from portal.clinic.models import Location
from portal.clinic.services import clinic_time_zone, current_clinic
from portal.extensions import db
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    STATUS_LABELS,
    Appointment,
    CalendarFeed,
)
from portal.scheduling.services import CATEGORY, PROVIDER_ROLE
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case

FEED_DAYS_BACK = 30
FEED_DAYS_AHEAD = 180


def hash_feed_token(token: str) -> str:
    """What is kept of a feed's token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_calendar_feed(actor, *, shows_names: bool = False) -> tuple[CalendarFeed, str]:
    """A new feed of the acting provider's own schedule; returns it with its token (shown
    once, only hashed here). ``shows_names``: the provider's choice, allowed only while the
    clinic lets feeds name patients."""
    with use_case():
        provider = db.session.get(User, actor.id) if actor.id is not None else None
        if provider is None or not _serves(provider):
            raise Refused("Only providers have a calendar feed.", field="shows_names")
        if shows_names and not feeds_show_names():
            raise Refused(
                "The clinic does not allow patients' names in calendar feeds.",
                field="shows_names",
            )
        token = secrets.token_urlsafe(32)
        feed = CalendarFeed(
            provider_id=provider.id, token_hash=hash_feed_token(token), shows_names=shows_names
        )
        db.session.add(feed)
        audit.record(
            actor,
            "calendar_feed.create",
            obj=feed,
            category=CATEGORY,
            detail=f"provider={provider.id} names={'yes' if shows_names else 'no'}",
        )
    return feed, token


def _serves(provider: User, now: datetime | None = None) -> bool:
    """Whether a provider's feeds may answer: an enabled account holding the provider role,
    whose last day of employment (if set) is not behind today. The worker disables such an
    account (and so revokes its feeds) just after midnight; this answers before it does."""
    return (
        provider.is_enabled
        and PROVIDER_ROLE in provider.roles
        and not employment_ended(provider, clinic_today(now))
    )


def revoke_calendar_feed(actor, feed_id: int, *, own_only: bool = False) -> None:
    """Revoke a feed: its URL answers 404 from now on.

    ``own_only``: the actor may revoke only their own feed (a provider's self-service);
    anyone else's is answered as unknown (404). A feed revoked by someone else is told to
    its provider at their next sign-in.
    """
    with use_case():
        feed = db.session.get(CalendarFeed, feed_id)
        if feed is None or (own_only and feed.provider_id != actor.id):
            raise NotFound()
        if feed.revoked_at is not None:
            return
        feed.revoked_at = utcnow()
        audit.record(
            actor,
            "calendar_feed.revoke",
            obj=feed,
            category=CATEGORY,
            detail=f"provider={feed.provider_id}",
        )
        add_account_notice(actor, feed.provider_id, "calendar_feed_revoked")


@when_access_withdrawn
def revoke_feeds_of_withdrawn_provider(actor, user: User, reason: str, roles) -> None:
    """Disabling a provider's account, or removing their provider role, revokes every feed
    of theirs in the same transaction (each revocation audited; one notice to them)."""
    if reason != ACCESS_DISABLED and PROVIDER_ROLE not in roles:
        return
    feeds = list(
        db.session.scalars(
            select(CalendarFeed).where(
                CalendarFeed.provider_id == user.id, CalendarFeed.revoked_at.is_(None)
            )
        )
    )
    now = utcnow()
    for feed in feeds:
        feed.revoked_at = now
        audit.record(
            actor,
            "calendar_feed.revoke",
            obj=feed,
            category=CATEGORY,
            detail=f"provider={user.id} reason={reason}",
        )
    if feeds:
        kind = (
            "calendar_feeds_revoked_disabled"
            if reason == ACCESS_DISABLED
            else "calendar_feeds_revoked_role"
        )
        add_account_notice(actor, user.id, kind)
    db.session.flush()


def list_calendar_feeds(provider_id: int | None = None) -> list[CalendarFeed]:
    """Every feed (or one provider's), newest first (revoked ones too, for the record)."""
    query = select(CalendarFeed).order_by(CalendarFeed.created_at.desc(), CalendarFeed.id.desc())
    if provider_id is not None:
        query = query.where(CalendarFeed.provider_id == provider_id)
    return list(db.session.scalars(query))


def feed_owner_names(feeds: list[CalendarFeed]) -> dict[int, str]:
    """The names of the feeds' providers, whatever their account's state now (a revoked
    feed of someone who left still says whose it was)."""
    ids = {feed.provider_id for feed in feeds}
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.full_name).where(User.id.in_(ids))).all())


def feeds_show_names() -> bool:
    """Whether the clinic lets providers' calendar feeds name patients (each provider still
    chooses for their own feed)."""
    clinic = current_clinic()
    return bool(clinic and clinic.calendar_feed_shows_names)


def calendar_feed_ics(token: str, source: str | None, *, now: datetime | None = None) -> bytes:
    """The iCalendar text of the feed the token opens; NotFound for unknown or revoked tokens,
    and for a provider whose account is disabled or no longer holds the provider role.

    Shows times, type, location (and room) and status; patient names only when the provider
    chose them for this feed and the clinic still allows them, and then the feed's reading
    is audited (the feed is read first; the use case only records the reading).
    """
    now = now or utcnow()
    feed = db.session.scalar(
        select(CalendarFeed).where(CalendarFeed.token_hash == hash_feed_token(token or ""))
    )
    if feed is None or feed.revoked_at is not None:
        raise NotFound()
    # Checked at every read, not only when access is withdrawn: whatever way an account
    # lost its access (a role row removed by hand, a restore), its feeds stop answering.
    provider = db.session.get(User, feed.provider_id)
    if provider is None or not _serves(provider, now):
        raise NotFound()
    show_names = feed.shows_names and feeds_show_names()
    appointments = list(
        db.session.scalars(
            select(Appointment)
            .where(
                Appointment.provider_id == feed.provider_id,
                Appointment.status.not_in(INACTIVE_STATUSES),
                Appointment.starts_at >= now - timedelta(days=FEED_DAYS_BACK),
                Appointment.starts_at < now + timedelta(days=FEED_DAYS_AHEAD),
            )
            .options(selectinload(Appointment.room))
            .order_by(Appointment.starts_at)
        )
    )
    locations = dict(db.session.execute(select(Location.id, Location.name)).all())
    calendar = Calendar()
    calendar.add("prodid", "-//Practice Portal//Provider schedule//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"{provider.full_name} — schedule")
    calendar.add("x-wr-timezone", clinic_time_zone())
    # Ask calendar apps to fetch again often: the front desk changes the day as it goes.
    calendar.add("refresh-interval", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT15M")
    for appointment in appointments:
        event = Event()
        event.add("uid", f"appointment-{appointment.id}@practice-portal")
        event.add("dtstamp", now)
        event.add("dtstart", appointment.starts_at)
        event.add("dtend", appointment.ends_at)
        summary = appointment.appointment_type.name
        if show_names:
            summary = f"{summary}: {appointment.patient.display_name}"
        event.add("summary", summary)
        where = locations.get(appointment.location_id, "")
        if appointment.room is not None:
            where = f"{where}, {appointment.room.name}"
        event.add("location", where)
        event.add("description", f"Status: {STATUS_LABELS[appointment.status]}")
        event.add("sequence", appointment.version)
        calendar.add_component(event)
    if show_names and appointments:
        feed_id, provider_id = feed.id, feed.provider_id
        with use_case():
            audit.record(
                integration(f"calendar-feed-{feed_id}", source),
                "calendar_feed.read",
                category=CATEGORY,
                detail=f"feed={feed_id} provider={provider_id} appointments={len(appointments)}",
            )
    return calendar.to_ical()

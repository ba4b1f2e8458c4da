"""Calendar feeds: a provider's schedule as iCalendar at an unguessable address, for their
phone's calendar app. Only the token's hash is kept; revoking a feed ends its address.

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


def create_calendar_feed(actor, provider_id: int) -> tuple[CalendarFeed, str]:
    """A new feed for a provider; returns it with its token (shown once, only hashed here)."""
    with use_case():
        provider = db.session.get(User, provider_id)
        if provider is None or PROVIDER_ROLE not in provider.roles:
            raise Refused("Choose a provider.", field="provider_id")
        token = secrets.token_urlsafe(32)
        feed = CalendarFeed(provider_id=provider.id, token_hash=hash_feed_token(token))
        db.session.add(feed)
        audit.record(
            actor,
            "calendar_feed.create",
            obj=feed,
            category=CATEGORY,
            detail=f"provider={provider.id}",
        )
    return feed, token


def revoke_calendar_feed(actor, feed_id: int, *, own_only: bool = False) -> None:
    """Revoke a feed: its URL answers 404 from now on.

    ``own_only``: the actor may revoke only their own feed (a provider's self-service);
    anyone else's is answered as unknown (404).
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


def list_calendar_feeds(provider_id: int | None = None) -> list[CalendarFeed]:
    """Every feed (or one provider's), newest first (revoked ones too, for the record)."""
    query = select(CalendarFeed).order_by(CalendarFeed.created_at.desc(), CalendarFeed.id.desc())
    if provider_id is not None:
        query = query.where(CalendarFeed.provider_id == provider_id)
    return list(db.session.scalars(query))


def feeds_show_names() -> bool:
    """Whether the clinic lets calendar feeds name patients."""
    clinic = current_clinic()
    return bool(clinic and clinic.calendar_feed_shows_names)


def calendar_feed_ics(token: str, source: str | None, *, now: datetime | None = None) -> bytes:
    """The iCalendar text of the feed the token opens; NotFound for unknown or revoked tokens.

    Shows times, type, location (and room) and status; patient names only when the clinic
    turned ``calendar_feed_shows_names`` on, and then the feed's reading is audited (the
    feed is read first; the use case only records the reading).
    """
    now = now or utcnow()
    feed = db.session.scalar(
        select(CalendarFeed).where(CalendarFeed.token_hash == hash_feed_token(token or ""))
    )
    if feed is None or feed.revoked_at is not None:
        raise NotFound()
    provider = db.session.get(User, feed.provider_id)
    show_names = feeds_show_names()
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
    calendar.add("x-wr-calname", f"{provider.full_name if provider else 'Provider'} — schedule")
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

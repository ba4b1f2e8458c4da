"""The calendar: the day view (a column per chosen provider), the week view (one provider,
Monday to Sunday), the choice of columns, and the appointment types' colours.

Thin views: load -> authorize (@require) -> call the calendar's services -> lay the grid out
(``calendar.grid``) -> render the page, or only the grid for htmx.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, timedelta

from flask import Response, redirect, render_template, request, url_for

from portal.auth.permissions import require
from portal.clinic.clock import clinic_today, clinic_zone
from portal.dates import parse_date
from portal.ids import parse_id
from portal.scheduling import bp
from portal.scheduling.availability.services import working_intervals_between
from portal.scheduling.booking.services import view_appointment
from portal.scheduling.booking.views import appointment_panel_context
from portal.scheduling.calendar.grid import Column, build_grid
from portal.scheduling.calendar.services import (
    appointments_for_calendar,
    chosen_provider_ids,
    save_calendar_preference,
)
from portal.scheduling.models import STATUS_LABELS
from portal.scheduling.services import appointment_types, bookable_providers
from portal.timeutil import utcnow
from portal.web import current_actor as _actor
from portal.web import render

_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _day_argument() -> date:
    """The ``day`` query argument, or today in the clinic (a bad value: today)."""
    return parse_date(request.args.get("day")) or clinic_today()


def _working_hours(provider_ids: list[int], first_day: date, last_day: date) -> dict:
    """{(provider id, day): working intervals as UTC pairs}."""
    return {
        (provider_id, day): [(interval.starts_at, interval.ends_at) for interval in intervals]
        for provider_id, days in working_intervals_between(
            provider_ids, first_day, last_day
        ).items()
        for day, intervals in days.items()
    }


def _grid_links() -> tuple[str, bool]:
    """The appointment panel's link up to its id (ids are digits, so the link is that
    prefix plus the id: schedule.js opens a visit's panel with it); and whether slots can
    be booked from the grid."""
    visit_url = url_for("scheduling.appointment", appointment_id=0).removesuffix("0")
    return visit_url, _actor().has_permission("schedule.write")


def _book_url(provider_id: int) -> str:
    return url_for("scheduling.new_booking", provider_id=provider_id)


def _calendar_context() -> dict:
    return {
        "today": clinic_today(),
        "status_labels": STATUS_LABELS,
        "timedelta": timedelta,
    }


@bp.get("/")
@require("schedule.read")
def index():
    return redirect(url_for("scheduling.day"))


@bp.get("/day")
@require("schedule.read")
def day():
    """One column per chosen provider, a time grid in the clinic's zone, a "now" line."""
    actor = _actor()
    shown_day = _day_argument()
    providers = bookable_providers()
    chosen = chosen_provider_ids(actor, providers)
    shown = [p for p in providers if p.id in chosen]
    working = _working_hours([p.id for p in shown], shown_day, shown_day)
    entries = appointments_for_calendar(
        actor, [p.id for p in shown], shown_day, shown_day, view="day"
    )
    by_provider = defaultdict(list)
    for entry in entries:
        if entry.is_active:
            by_provider[entry.provider_id].append(entry)
    visit_url, can_book = _grid_links()
    columns = [
        (
            Column(
                label=provider.full_name,
                day=shown_day,
                working=working.get((provider.id, shown_day)),
                book_url=_book_url(provider.id) if can_book else None,
                slot_name=f" with {provider.full_name}",
            ),
            by_provider[provider.id],
        )
        for provider in shown
    ]
    grid = build_grid(columns, clinic_zone(), utcnow(), visit_url)
    cancelled = [entry for entry in entries if not entry.is_active]
    opened = parse_id(request.args.get("appointment", ""))  # after a booking without htmx
    panel = None
    if opened and not request.htmx:
        appointment = view_appointment(actor, opened)
        panel = render_template(
            "scheduling/booking/_appointment_panel.html",
            **appointment_panel_context(appointment),
        )
    return render(
        "scheduling/calendar/day.html",
        fragment="scheduling/calendar/_day_grid.html",
        panel=panel,
        day=shown_day,
        grid=grid,
        providers=providers,
        chosen=chosen,
        cancelled=cancelled,
        **_calendar_context(),
    )


@bp.post("/day/providers")
@require("schedule.read")
def choose_providers():
    """Remember the day view's columns for this user, then show the day with them."""
    chosen = [
        number
        for number in map(parse_id, request.form.getlist("provider_id"))
        if number is not None
    ]
    save_calendar_preference(_actor(), chosen)
    return redirect(url_for("scheduling.day", day=request.form.get("day") or None), code=303)


@bp.get("/week")
@require("schedule.read")
def week():
    """Seven days of one provider's calendar (Monday to Sunday)."""
    actor = _actor()
    providers = bookable_providers()
    provider_id = parse_id(request.args.get("provider_id", ""))
    provider = next((p for p in providers if p.id == provider_id), None)
    if provider is None and providers:
        chosen = chosen_provider_ids(actor, providers)
        provider = next(p for p in providers if p.id == chosen[0])
    shown_day = _day_argument()
    monday = shown_day - timedelta(days=shown_day.weekday())
    days = [monday + timedelta(days=n) for n in range(7)]
    zone = clinic_zone()
    visit_url, can_book = _grid_links()
    columns = []
    if provider:
        working = _working_hours([provider.id], days[0], days[-1])
        entries = appointments_for_calendar(actor, [provider.id], days[0], days[-1], view="week")
        by_day = defaultdict(list)
        for entry in entries:
            if entry.is_active:
                by_day[entry.starts_at.astimezone(zone).date()].append(entry)
        book_url = _book_url(provider.id) if can_book else None
        for one_day in days:
            label = f"{one_day:%a} {one_day.day} {one_day:%b}"
            column = Column(
                label=label,
                day=one_day,
                working=working.get((provider.id, one_day)),
                book_url=book_url,
                slot_name=f" on {label} with {provider.full_name}",
            )
            columns.append((column, by_day[one_day]))
    grid = build_grid(columns, zone, utcnow(), visit_url)
    return render(
        "scheduling/calendar/week.html",
        fragment="scheduling/calendar/_week_grid.html",
        day=shown_day,
        monday=monday,
        provider=provider,
        providers=providers,
        grid=grid,
        **_calendar_context(),
    )


@bp.get("/type-colours.css")
@require("schedule.read")
def type_colours():
    """Each appointment type's colour as a CSS class (CSP forbids style attributes)."""
    rules = []
    for appointment_type in appointment_types():
        colour = appointment_type.colour if _COLOUR.match(appointment_type.colour or "") else None
        rules.append(
            f".appt-type-{appointment_type.id} {{ --type-colour: {colour or '#1f5f8b'}; }}"
        )
    return Response("\n".join(rules) + "\n", mimetype="text/css")

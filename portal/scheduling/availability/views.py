"""Find next available: open slots for a type across providers, a page at a time, each
with a "Book" button (schedule.read; booking from it needs schedule.write)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from flask import current_app, request, url_for
from wtforms.fields.choices import SelectChoice

from portal.auth.permissions import require
from portal.clinic.clock import clinic_today
from portal.clinic.services import list_locations
from portal.dates import parse_instant
from portal.ids import parse_id
from portal.patients.services import search_patients
from portal.scheduling import bp
from portal.scheduling.availability.forms import FindSlotsForm
from portal.scheduling.availability.services import check_search_range, find_open_slots
from portal.scheduling.services import appointment_types, providers
from portal.transaction import Refused
from portal.web import attach_error as _attach_error
from portal.web import current_actor as _actor
from portal.web import render

SEARCH_DAYS_BY_DEFAULT = 14
# One screenful, earliest first; "Show later slots" pages on from the last one shown.
SLOTS_SHOWN = 20


def _choices(rows, label=lambda row: row.name, blank: str | None = None) -> list[SelectChoice]:
    options = [SelectChoice(row.id, label(row)) for row in rows]
    return [SelectChoice(None, blank), *options] if blank else options


def _page_after() -> tuple[datetime, int] | None:
    """Where a later page starts: after the (start, provider) of the last slot shown."""
    starts_at = parse_instant(request.args.get("after"))
    provider_id = parse_id(request.args.get("after_provider", ""))
    if provider_id is None or starts_at is None:
        return None
    return starts_at, provider_id


def _later_slots_url(slots) -> str:
    """This search again, from just after the last slot shown."""
    last = slots[-1]
    arguments = request.args.to_dict(flat=False)
    arguments["after"] = last.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    arguments["after_provider"] = str(last.provider_id)
    return url_for("scheduling.find_slots", **arguments)


def _earliest_slots_url() -> str:
    arguments = request.args.to_dict(flat=False)
    arguments.pop("after", None)
    arguments.pop("after_provider", None)
    return url_for("scheduling.find_slots", **arguments)


@bp.get("/find")
@require("schedule.read")
def find_slots():
    """The search form and, once a type is chosen, the open slots in time order, a page
    at a time (the search stops as soon as it has a page)."""
    today = clinic_today()
    searching = "appointment_type_id" in request.args
    after = _page_after() if searching else None
    form = FindSlotsForm(formdata=request.args if searching else None)
    types = appointment_types(active_only=True)
    chosen_from = providers()
    form.appointment_type_id.choices = _choices(types, blank="Choose a type")
    form.provider_ids.choices = _choices(chosen_from, label=lambda p: p.full_name)
    if not searching:
        form.first_day.data = today
        form.last_day.data = today + timedelta(days=SEARCH_DAYS_BY_DEFAULT - 1)
    slots = None
    status = 200
    if searching:
        if form.validate():
            try:
                check_search_range(form.first_day.data, form.last_day.data, today)
            except Refused as error:
                _attach_error(form, error)
            else:
                slots = find_open_slots(
                    form.appointment_type_id.data,
                    form.provider_ids.data or None,
                    form.first_day.data,
                    form.last_day.data,
                    form.time_of_day.data,
                    limit=SLOTS_SHOWN,
                    after=after,
                )
        if form.errors or form.form_errors:
            status = 422
    return render(
        "scheduling/availability/find.html",
        fragment="scheduling/availability/_find_results.html",
        form=form,
        slots=slots,
        types_by_id={t.id: t for t in types},
        providers_by_id={p.id: p for p in chosen_from},
        locations_by_id={loc.id: loc for loc in list_locations()},
        book_url=url_for("scheduling.book"),
        limit=SLOTS_SHOWN,
        after=after,
        later_url=_later_slots_url(slots) if slots and len(slots) >= SLOTS_SHOWN else None,
        earliest_url=_earliest_slots_url() if after else None,
        # each Book button carries its own key: a double click books once
        new_request_key=lambda: secrets.token_hex(16),
        status=status,
    )


@bp.post("/find/patients")
@require("schedule.write")
def find_patient_choices():
    """The registry search, answered as a list of patients to choose for booking."""
    outcome = search_patients(
        _actor(), request.form.get("q", ""), current_app.config["DEFAULT_PHONE_REGION"]
    )
    return render(
        "scheduling/availability/_find_patients.html",
        fragment="scheduling/availability/_find_patients.html",
        outcome=outcome,
        patients=outcome.patients,
    )

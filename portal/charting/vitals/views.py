"""Vital signs: a patient's page, an encounter's section, trend charts and sparklines, and
marking a set entered in error.

Thin views: load -> authorize (@require; ids through the services, which 404) -> call a
service in portal.charting.vitals -> render the page, or its fragment for htmx.
"""

from __future__ import annotations

from flask import Response, abort, flash, redirect, request, url_for

from portal.auth.permissions import require
from portal.charting import bp
from portal.charting.encounters.services import get_encounter_for
from portal.charting.encounters.views import encounter_section
from portal.charting.vitals import charts
from portal.charting.vitals import services as vitals
from portal.charting.vitals.forms import EnteredInErrorForm, VitalsForm
from portal.ids import parse_id
from portal.patients.services import death_limit, get_patient_for
from portal.transaction import Refused
from portal.web import attach_error, current_actor, is_htmx_request, render

# The query argument carrying the ticket of the audited page an image is shown on.
IMAGE_TICKET_ARG = "page_ticket"


def _window() -> str:
    window = request.args.get("window", charts.DEFAULT_WINDOW)
    return window if window in charts.WINDOWS else charts.DEFAULT_WINDOW


def _try_record(form: VitalsForm, save) -> tuple[object | None, dict[str, str]]:
    """Validate and save; returns (the saved set or None, the warnings to confirm).

    Refusals are put beside their fields; the form keeps everything that was typed.
    """
    if not form.validate():
        return None, {}
    try:
        saved = save(
            form.entered(),
            bp_position=form.bp_position.data or None,
            taken_at=form.taken_at_utc(),
            confirmed=bool(form.confirmed.data),
        )
    except vitals.NeedsConfirmation as error:
        return None, error.warnings
    except vitals.ImpossibleValues as error:
        for name, message in error.errors.items():
            target = getattr(form, name, None)
            if target is None:
                form.form_errors.append(message)
            else:
                target.errors = [*target.errors, message]
        return None, {}
    except Refused as error:
        attach_error(form, error)
        return None, {}
    return saved, {}


def _vitals_page(patient_id: int, form: VitalsForm, warnings: dict, status: int = 200):
    # A page number bounded like an id: a huge one is the (empty) last page, not a 500.
    page = parse_id(request.args.get("page")) or 1
    patient, sets, has_older = vitals.view_patient_vitals(current_actor(), patient_id, page)
    return render(
        "charting/vitals/vitals.html",
        status=status,
        patient=patient,
        vitals_sets=sets,
        has_older=has_older,
        page_number=page,
        window=_window(),
        windows=charts.WINDOWS,
        max_points=charts.MAX_POINTS,
        charts=charts.charts_with_data(patient.id),
        vitals_form=form,
        vitals_warnings=warnings,
        vitals_units=vitals.unit_symbols(),
        vitals_show_head=vitals.shows_head_circumference(patient.birth_date),
        vitals_action=url_for("charting.record_patient_vitals", patient_id=patient.id),
        vitals_after_death=death_limit(patient),
        vitals_image_ticket=charts.image_ticket(current_actor(), patient.id),
    )


@bp.get("/patients/<int:patient_id>/vitals")
@require("chart.read")
def patient_vitals(patient_id: int):
    """The patient's vital signs: trend charts, the sets newest first, a form for a new set."""
    return _vitals_page(patient_id, VitalsForm(formdata=None, prefix="vitals"), {})


@bp.post("/patients/<int:patient_id>/vitals")
@require("chart.write")
def record_patient_vitals(patient_id: int):
    """Record a set outside any visit; 422 with the messages (or the warnings to confirm)."""
    form = VitalsForm(prefix="vitals")
    saved, warnings = _try_record(
        form,
        lambda entered, **options: vitals.record_vitals(
            current_actor(), patient_id, entered, **options
        ),
    )
    if saved is None:
        return _vitals_page(patient_id, form, warnings, status=422)
    flash("Vital signs recorded.", "success")
    return redirect(url_for("charting.patient_vitals", patient_id=patient_id), 303)


def encounter_vitals_context(encounter) -> dict:
    """What `charting/vitals/_encounter_vitals.html` needs to show and take an encounter's
    vitals (no audit event: the page that includes the section records its own view).

    For a deceased patient the form is kept for late entries, with the notice of the date of
    death and "Taken at" set to the visit's time when the visit was on or before that day.
    """
    section = vitals.encounter_vitals(encounter)
    prefill = {"taken_at": section.prefill_taken_at} if section.prefill_taken_at else None
    return {
        "vitals_encounter_id": section.encounter_id,
        "vitals_patient_id": section.patient_id,
        "vitals_sets": section.sets,
        "vitals_form": VitalsForm(formdata=None, prefix="vitals", data=prefill),
        "vitals_units": vitals.unit_symbols(),
        "vitals_show_head": section.show_head_circumference,
        "vitals_warnings": {},
        "vitals_after_death": section.after_death,
        "vitals_visit_after_death": section.visit_after_death,
    }


@encounter_section
def vitals_section(actor, page) -> dict:
    """The encounter page's vitals section."""
    return encounter_vitals_context(page.encounter)


def _encounter_section(encounter, form=None, warnings=None, status: int = 200):
    """The encounter's vitals section: alone for htmx, else on a page of its own under the
    patient's banner (a form with errors, no script)."""
    context = encounter_vitals_context(encounter)
    if form is not None:
        context["vitals_form"] = form
        context["vitals_warnings"] = warnings or {}
    patient = get_patient_for(current_actor(), encounter.patient_id)
    return render(
        "charting/vitals/vitals_encounter.html",
        fragment="charting/vitals/_encounter_vitals.html",
        status=status,
        patient=patient,
        **context,
    )


@bp.post("/encounters/<int:encounter_id>/vitals")
@require("chart.write")
def record_encounter_vitals(encounter_id: int):
    """Record a set taken at this visit; htmx gets the section back, updated or with errors."""
    encounter = get_encounter_for(current_actor(), encounter_id)
    form = VitalsForm(prefix="vitals")
    saved, warnings = _try_record(
        form,
        lambda entered, **options: vitals.record_encounter_vitals(
            current_actor(), encounter.id, entered, **options
        ),
    )
    if saved is None:
        return _encounter_section(encounter, form, warnings, status=422)
    if is_htmx_request():
        return _encounter_section(encounter)
    flash("Vital signs recorded.", "success")
    return redirect(url_for("charting.encounter_page", encounter_id=encounter.id), 303)


def _set_home(patient_id: int, encounter_id: int | None) -> str:
    """Where a set is listed: its visit's page, or the patient's vitals page."""
    if encounter_id is not None:
        return url_for("charting.encounter_page", encounter_id=encounter_id) + "#encounter-vitals"
    return url_for("charting.patient_vitals", patient_id=patient_id)


def _entered_in_error_page(patient_id: int, vitals_id: int, form, status: int = 200):
    patient, shown, row = vitals.view_set_to_mark(current_actor(), patient_id, vitals_id)
    return render(
        "charting/vitals/vitals_entered_in_error.html",
        status=status,
        patient=patient,
        vitals_set=shown,
        form=form,
        back_url=_set_home(patient.id, row.encounter_id),
    )


@bp.get("/patients/<int:patient_id>/vitals/<int:vitals_id>/entered-in-error")
@require("chart.write")
def confirm_vitals_error(patient_id: int, vitals_id: int):
    """Ask before marking a set entered in error: the set, a reason, a box to tick."""
    return _entered_in_error_page(patient_id, vitals_id, EnteredInErrorForm(formdata=None))


@bp.post("/patients/<int:patient_id>/vitals/<int:vitals_id>/entered-in-error")
@require("chart.write")
def mark_vitals_error(patient_id: int, vitals_id: int):
    """Mark a set entered in error (kept, struck out, left out of the charts) once the reason
    is given and the box ticked; otherwise the page again, 422, and nothing changed."""
    form = EnteredInErrorForm()
    if form.validate():
        try:
            marked = vitals.mark_entered_in_error(
                current_actor(), patient_id, vitals_id, form.reason.data
            )
        except Refused as error:
            attach_error(form, error)
        else:
            flash("Marked as entered in error.", "success")
            return redirect(_set_home(patient_id, marked.encounter_id), 303)
    return _entered_in_error_page(patient_id, vitals_id, form, status=422)


def _svg(content: bytes) -> Response:
    return Response(content, mimetype="image/svg+xml")


@bp.get("/patients/<int:patient_id>/vitals/<chart>.svg")
@require("chart.read")
def vitals_chart(patient_id: int, chart: str):
    """One vital's trend as an SVG image, in the clinic's units, over ``?window=``."""
    if chart not in charts.CHARTS:
        abort(404)
    actor = current_actor()
    covered = charts.covered_by_page(actor, patient_id, request.args.get(IMAGE_TICKET_ARG))
    return _svg(charts.trend_chart(actor, patient_id, chart, _window(), covered=covered).svg)


@bp.get("/patients/<int:patient_id>/vitals/<chart>/sparkline.svg")
@require("chart.read")
def vitals_sparkline(patient_id: int, chart: str):
    """A tiny line of one vital's recent values, for the chart summary."""
    if chart not in charts.CHARTS:
        abort(404)
    actor = current_actor()
    covered = charts.covered_by_page(actor, patient_id, request.args.get(IMAGE_TICKET_ARG))
    return _svg(charts.sparkline(actor, patient_id, chart, covered=covered))

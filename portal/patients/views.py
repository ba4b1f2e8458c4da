"""Patient registry pages: register, patient page, edit, status, search.

Thin views: load (through services.get_patient_for) -> authorize (@require) -> call a
service -> render. Invalid forms answer 422 with everything typed kept; possible duplicates
answer 409 with the matches listed.
"""

from __future__ import annotations

from flask import current_app, flash, redirect, request, url_for
from flask_login import current_user

from portal.auth.permissions import require
from portal.clinic.clock import clinic_today
from portal.patients import bp, services
from portal.patients.forms import (
    DEMOGRAPHIC_FIELDS,
    PHONE_FIELDS,
    DemographicsForm,
    PatientSearchForm,
    RegistrationForm,
    StatusForm,
)
from portal.patients.models import PATIENT_STATUSES, SEX_AT_BIRTH
from portal.patients.page_sections import sections_for
from portal.transaction import Refused
from portal.web import attach_error, render, safe_local_path
from portal.web import current_actor as _actor


@bp.route("/new", methods=["GET", "POST"])
@require("patients.write")
def register():
    """Register a patient; possible duplicates need an explicit "different person"."""
    form = RegistrationForm(today=clinic_today())
    if not form.is_submitted():
        return render("patients/register.html", form=form, matches=[])
    if not form.validate():
        return render("patients/register.html", form=form, matches=[], status=422)
    try:
        patient = services.register_patient(
            _actor(), form.demographics(), confirmed_different=form.different_person.data
        )
    except services.PossibleDuplicates as duplicates:
        form.different_person.data = False
        return render("patients/register.html", form=form, matches=duplicates.matches, status=409)
    flash("Patient registered.", "success")
    return redirect(url_for("patients.show", patient_id=patient.id), code=303)


@bp.get("/<int:patient_id>")
@require("patients.read")
def show(patient_id: int):
    """The patient page: banner, demographics, the parts other domains add (appointments),
    and the record's status. The page's one audit event covers the parts: they are read
    after it is recorded, for this page only."""
    patient = services.view_patient(_actor(), patient_id)
    form = StatusForm(birth_date=patient.birth_date, status=patient.status)
    sections = sections_for(patient.id, current_user.has_permission)
    return render("patients/show.html", patient=patient, status_form=form, page_sections=sections)


def _form_data_of(patient) -> dict:
    """A patient's columns as the edit form shows them (phones in national format)."""
    phone = current_app.jinja_env.filters["phone"]
    data = {name: getattr(patient, name) for name in DEMOGRAPHIC_FIELDS}
    for name in PHONE_FIELDS:
        data[name] = phone(data[name]) or None
    return data


@bp.route("/<int:patient_id>/edit", methods=["GET", "POST"])
@require("patients.write")
def edit(patient_id: int):
    """Edit demographics with the same validation as registration.

    ``next`` (a local path, e.g. the check-in page) is where saving or cancelling returns to,
    so the front desk can fix an address mid check-in and carry on.
    """
    patient_page = url_for("patients.show", patient_id=patient_id)
    return_to = safe_local_path(request.values.get("next"), default=patient_page)
    if request.method != "POST":
        patient = services.view_patient(_actor(), patient_id, purpose="edit form")
        form = DemographicsForm(data=_form_data_of(patient), today=clinic_today())
        return render("patients/edit.html", patient=patient, form=form, return_to=return_to)
    form = DemographicsForm(today=clinic_today())
    if not form.validate():
        patient = services.view_patient(_actor(), patient_id, purpose="edit form")
        return render(
            "patients/edit.html", patient=patient, form=form, return_to=return_to, status=422
        )
    changed = services.update_demographics(_actor(), patient_id, form.demographics())
    flash("Demographics saved." if changed else "Nothing changed.", "success")
    return redirect(return_to, code=303)


@bp.post("/<int:patient_id>/status")
@require("patients.write")
def change_status(patient_id: int):
    """Mark inactive, deceased (with date) or active again; records are never deleted.

    A date of death with vital signs or immunizations dated after it comes back (422) with
    their count and a box to tick; nothing changes until it is ticked for that date."""
    patient = services.get_patient_for(_actor(), patient_id)
    today = clinic_today()
    form = StatusForm(birth_date=patient.birth_date, today=today)
    if not form.validate():
        patient = services.view_patient(_actor(), patient_id, purpose="status form")
        return render("patients/show.html", patient=patient, status_form=form, status=422)
    try:
        services.change_status(
            _actor(),
            patient_id,
            form.status.data,
            form.deceased_date.data,
            today=today,
            confirmed_after_death=form.confirms_records_after_death(),
        )
    except services.RecordsAfterDeath as warning:
        form.warn_of_records_after_death()
        patient = services.view_patient(_actor(), patient_id, purpose="status form")
        return render(
            "patients/show.html",
            patient=patient,
            status_form=form,
            records_after_death=warning.found,
            status=422,
        )
    except Refused as refusal:
        attach_error(form, refusal)
        patient = services.view_patient(_actor(), patient_id, purpose="status form")
        return render(
            "patients/show.html", patient=patient, status_form=form, status=refusal.status
        )
    flash("Status changed.", "success")
    return redirect(url_for("patients.show", patient_id=patient_id), code=303)


@bp.post("/search")
@require("patients.read")
def search():
    """Search from the top bar: a fragment for htmx, a results page without JavaScript."""
    form = PatientSearchForm()
    outcome = services.search_patients(
        _actor(), form.q.data or "", current_app.config["DEFAULT_PHONE_REGION"]
    )
    return render(
        "patients/search.html",
        fragment="patients/_search_results.html",
        form=form,
        outcome=outcome,
        patients=outcome.patients,
    )


@bp.app_template_global()
def patient_href(patient_id: int) -> str:
    """Where opening a patient (from a search or a list) leads: clinicians to the chart
    summary, which is what they open a patient for; everyone else (the front desk) to the
    demographics and appointments."""
    if current_user.has_permission("chart.read"):
        return url_for("charting.chart_summary", patient_id=patient_id)
    return url_for("patients.show", patient_id=patient_id)


@bp.app_context_processor
def patient_labels() -> dict:
    """Labels the banner and lists need on any page (the banner is included everywhere)."""
    return {"sex_labels": SEX_AT_BIRTH, "status_labels": PATIENT_STATUSES}

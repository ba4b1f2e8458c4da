"""The compose page of a prescription and what it posts: start a draft, search and choose the
drug, autosave the SIG and the details (the preview, the field messages and the safety panel
come back with each save), the pharmacy, favourites, renew, discard.

Thin views: load -> authorize (@require, then the services' object checks: a draft is its
prescriber's, under a patient the actor may see) -> call a service -> render the page, or
its fragment for htmx. Signing is the signing step's route (``prescriptions.sign``).
"""

from __future__ import annotations

import hashlib
import json

from flask import abort, current_app, flash, redirect, request, url_for

from portal.auth.permissions import require
from portal.charting.encounters.views import encounter_section
from portal.clinic.clock import clinic_today
from portal.ids import parse_id
from portal.prescriptions import bp
from portal.prescriptions.compose import services
from portal.prescriptions.compose.services import DraftConflict, DraftInput, NotADraft
from portal.prescriptions.forms import (
    DrugSearchForm,
    FavoriteForm,
    PharmacySearchForm,
    PrescriptionDetailsForm,
    SigForm,
)
from portal.prescriptions.sig import days_supply as worked_out_days
from portal.prescriptions.sig import parse_quantity
from portal.transaction import Refused
from portal.web import current_actor, is_htmx_request, render

SIG_PREFIX = "sig"
DETAILS_PREFIX = "rx"
# How many override rows a page may post (more alerts than this is not a real page).
MAX_OVERRIDE_ROWS = 40


@encounter_section
def prescribe_section(actor, page) -> dict:
    """The encounter page's "Prescribe" and the prescriber's drafts of the visit."""
    if not actor.has_permission("rx.compose"):
        return {"visit_drafts": []}
    return {"visit_drafts": services.visit_drafts(actor, page.encounter.id)}


def alerts_key(alerts) -> str:
    """A short fingerprint of the alerts shown: an autosave re-renders the safety panel only
    when it changed, so a reason being typed in it is not replaced under the cursor."""
    return hashlib.sha256("|".join(a.code for a in alerts).encode()).hexdigest()[:16]


def compose_url(draft_id: int) -> str:
    return url_for("prescriptions.compose", draft_id=draft_id)


def _back_to_chart(patient_id: int, encounter_id: int | None = None):
    if encounter_id:
        return redirect(url_for("charting.encounter_page", encounter_id=encounter_id), 303)
    return redirect(url_for("prescriptions.prescriptions", patient_id=patient_id), 303)


# --- starting ----------------------------------------------------------------------------------


@bp.post("/patients/<int:patient_id>/prescriptions/new")
@require("rx.compose")
def start_prescription(patient_id: int):
    """A new draft for the patient (from a visit when the form names its encounter)."""
    encounter_id = parse_id(request.form.get("encounter_id"))
    if request.form.get("encounter_id") and encounter_id is None:
        abort(404)
    try:
        draft = services.start_draft(current_actor(), patient_id, encounter_id)
    except Refused as refused:
        flash(refused.message, "danger")
        return _back_to_chart(patient_id, encounter_id)
    return redirect(compose_url(draft.id), 303)


@bp.post("/prescriptions/<int:prescription_id>/renew")
@require("rx.compose")
def renew_prescription(prescription_id: int):
    """A new draft copied from one of the patient's prescriptions."""
    try:
        draft = services.renew(current_actor(), prescription_id)
    except Refused as refused:
        flash(refused.message, "danger")
        return redirect(url_for("main.home"), 303)
    return redirect(compose_url(draft.id), 303)


# --- the page ----------------------------------------------------------------------------------


def _stored_sig(draft) -> dict:
    try:
        stored = json.loads(draft.sig) if draft.sig else {}
    except ValueError:
        stored = {}
    return stored if isinstance(stored, dict) else {}


def _sig_form(draft, posted: bool = False) -> SigForm:
    kwargs = {} if posted else {"formdata": None, "data": _stored_sig(draft)}
    return SigForm(
        prefix=SIG_PREFIX, dose_form=draft.dose_form, product_route=draft.route, **kwargs
    )


def _details_form(draft, choices, sig=None, posted: bool = False) -> PrescriptionDetailsForm:
    kwargs = {}
    if not posted:
        try:
            codes = [row["code"] for row in json.loads(draft.diagnoses or "[]")]
        except (ValueError, TypeError, KeyError):
            codes = []
        kwargs = {
            "formdata": None,
            "data": {
                "quantity": draft.quantity,
                "dispense_unit": draft.dispense_unit or "",
                "days_supply": draft.days_supply,
                "refills": _stored_refills(draft.refills),
                "dispense_as_written": not draft.substitution_allowed,
                "pharmacist_note": draft.pharmacist_note,
                "effective_date": draft.effective_on,
                "diagnoses": codes,
            },
        }
    return PrescriptionDetailsForm(
        prefix=DETAILS_PREFIX,
        today=clinic_today(),
        schedule=draft.schedule,
        sig=sig,
        diagnosis_choices=choices,
        **kwargs,
    )


def _stored_refills(text: str | None) -> int | None:
    """The refills as the field shows them: 0 on a new draft, blank for what is no number."""
    if text is None:
        return 0
    return int(text) if text.isdigit() else None


def _preview(sig_form: SigForm, details: PrescriptionDetailsForm) -> dict:
    """The directions as they will read and the days supply worked out, when they can be."""
    days = None
    if sig_form.sig is not None and not details.quantity.errors:
        try:
            days = worked_out_days(
                sig_form.sig,
                _decimal_or_none(details.quantity.data),
                details.dispense_unit.data,
            )
        except (Refused, ValueError, ArithmeticError):
            days = None
    return {"directions": sig_form.directions_text, "days": days, "warnings": sig_form.warnings}


def _decimal_or_none(text):
    try:
        return parse_quantity(text) if text else None
    except Refused:
        return None


def _render_page(page: services.ComposePage, sig_form, details, status: int = 200, **extra):
    draft = page.draft
    overrides = services.stored_overrides(draft)
    return render(
        "prescriptions/compose/compose.html",
        status=status,
        compose=page,
        draft=draft,
        patient=page.patient,
        sig_form=sig_form,
        details=details,
        preview=_preview(sig_form, details),
        alerts=page.alerts,
        overrides=overrides,
        override_reasons=services.OVERRIDE_REASONS,
        override_missing=services.override_problems(page.alerts, overrides),
        alerts_key=alerts_key(page.alerts),
        search_form=extra.pop("search_form", DrugSearchForm()),
        pharmacy_form=extra.pop("pharmacy_form", PharmacySearchForm()),
        favorite_form=extra.pop("favorite_form", FavoriteForm()),
        matched=services.is_matched(draft),
        # The signing step's dialog (TOTP, and the password for a controlled substance),
        # once that part is installed: this page works without it.
        can_sign="prescriptions.sign" in current_app.view_functions,
        sign_dialog="prescriptions.sign_dialog" in current_app.view_functions,
        **extra,
    )


@bp.get("/prescriptions/<int:draft_id>")
@require("rx.compose")
def compose(draft_id: int):
    """The compose page of one of the prescriber's drafts, under the patient's banner."""
    actor = current_actor()
    try:
        page = services.open_draft(actor, draft_id)
    except NotADraft as signed:
        flash(signed.message, "warning")
        return redirect(url_for("prescriptions.prescriptions", patient_id=signed.patient_id), 303)
    sig_form = _sig_form(page.draft)
    if page.draft.sig:
        sig_form.validate()  # the preview of what was saved; its messages wait for a change
        _clear_errors(sig_form)
    details = _details_form(page.draft, page.diagnosis_choices, sig=sig_form.sig)
    return _render_page(page, sig_form, details)


def _clear_errors(form) -> None:
    for field in form:
        field.errors = []


# --- autosave ------------------------------------------------------------------------------------


def _overrides_posted() -> list[dict]:
    """Each ``reason:<alert code>`` posted with its ``comment:<alert code>`` (the names the
    signing dialog uses too)."""
    rows = []
    for name in request.form:
        if name.startswith("reason:") and len(rows) < MAX_OVERRIDE_ROWS:
            code = name.removeprefix("reason:")
            rows.append(
                {
                    "code": code,
                    "reason": request.form.get(name, ""),
                    "comment": request.form.get(f"comment:{code}", ""),
                }
            )
    return rows


def _typed(sig_form: SigForm, sig_ok: bool, details: PrescriptionDetailsForm, ok: bool):
    sig_fields = {name: field.data for name, field in sig_form._fields.items()}
    values = details.values() if ok else {}
    return DraftInput(
        sig_fields=sig_fields,
        directions=sig_form.directions_text if sig_ok else None,
        quantity=details.quantity.data or "",
        dispense_unit=details.dispense_unit.data or "",
        days_supply=details.days_supply.data if not details.days_supply.errors else None,
        refills=(
            str(details.refills.data)
            if details.refills.data is not None
            else (request.form.get(f"{DETAILS_PREFIX}-refills") or "")
        ),
        dispense_as_written=bool(details.dispense_as_written.data),
        pharmacist_note=details.pharmacist_note.data or "",
        effective_on=(
            values.get("effective_date")
            if ok
            else (None if details.effective_date.errors else details.effective_date.data)
        ),
        diagnosis_codes=list(details.diagnoses.data or []),
        overrides=_overrides_posted(),
    )


@bp.post("/prescriptions/<int:draft_id>/draft")
@require("rx.compose")
def save_draft(draft_id: int):
    """Autosave (htmx, as the prescriber types) or "Save draft" without script.

    Keeps what was typed, valid or not, and answers with the saved status, the directions
    as they will read, each field's message, and the safety panel run again; a save from an
    older version of the draft answers 409 in words, with nothing overwritten."""
    actor = current_actor()
    try:
        draft = services.get_draft_for(actor, draft_id)
    except Refused as refused:
        return render("prescriptions/compose/_status.html", error=refused.message, status=409)
    choices = services.diagnosis_choices(draft.patient_id)
    sig_form = _sig_form(draft, posted=True)
    sig_ok = sig_form.validate()
    details = _details_form(draft, choices, sig=sig_form.sig, posted=True)
    details_ok = details.validate()
    version = parse_id(request.form.get("version"))
    try:
        draft = services.save_draft(
            actor, draft_id, version, _typed(sig_form, sig_ok, details, details_ok)
        )
    except DraftConflict as conflict:
        return render(
            "prescriptions/compose/_status.html", error=conflict.message, status=conflict.status
        )
    except Refused as refused:
        return render("prescriptions/compose/_status.html", error=refused.message, status=422)
    alerts = services.safety_alerts(actor, draft.id)
    overrides = services.stored_overrides(draft)
    key = alerts_key(alerts)
    if not is_htmx_request():
        page = services.open_draft(actor, draft.id)
        flash("Draft saved.", "success")
        return _render_page(page, sig_form, details)
    return render(
        "prescriptions/compose/_saved.html",
        draft=draft,
        sig_form=sig_form,
        details=details,
        preview=_preview(sig_form, details),
        alerts=alerts,
        overrides=overrides,
        override_reasons=services.OVERRIDE_REASONS,
        override_missing=services.override_problems(alerts, overrides),
        alerts_key=key,
        refresh_safety=key != request.form.get("alerts_key"),
    )


@bp.post("/prescriptions/<int:draft_id>/discard")
@require("rx.compose")
def discard_draft(draft_id: int):
    """Delete the draft (audited); back to the visit or the patient's prescriptions."""
    actor = current_actor()
    try:
        draft = services.get_draft_for(actor, draft_id)
    except Refused as refused:
        flash(refused.message, "danger")
        return redirect(url_for("main.home"), 303)
    encounter_id = draft.encounter_id
    patient_id = services.discard_draft(actor, draft_id)
    flash("Draft discarded.", "success")
    return _back_to_chart(patient_id, encounter_id)


# --- the drug --------------------------------------------------------------------------------


@bp.post("/prescriptions/<int:draft_id>/drugs")
@require("rx.compose")
def search_drugs(draft_id: int):
    """Products matching what was typed (htmx as you type; the page without script). A POST:
    what is searched for in a patient's prescription stays out of URLs and logs."""
    actor = current_actor()
    try:
        services.get_draft_for(actor, draft_id)
    except Refused:
        abort(409)
    form = DrugSearchForm()
    error, found = None, None
    try:
        found = services.search_drugs(actor, form.drug_query.data or "")
    except Refused as refused:
        error = refused.message
    if is_htmx_request():
        return render(
            "prescriptions/compose/_drug_results.html",
            draft_id=draft_id,
            found=found,
            error=error,
            query=form.drug_query.data or "",
        )
    page = services.open_draft(actor, draft_id)
    sig_form = _sig_form(page.draft)
    details = _details_form(page.draft, page.diagnosis_choices)
    return _render_page(page, sig_form, details, search_form=form, found=found, search_error=error)


@bp.post("/prescriptions/<int:draft_id>/drug")
@require("rx.compose")
def choose_drug(draft_id: int):
    """Put the chosen product on the draft and open the page again for its directions."""
    try:
        services.choose_drug(current_actor(), draft_id, request.form.get("choice", ""), None)
    except Refused as refused:
        flash(refused.message, "danger")
    return redirect(compose_url(draft_id) + "#directions", 303)


# --- the pharmacy ----------------------------------------------------------------------------


@bp.post("/prescriptions/<int:draft_id>/pharmacies")
@require("rx.compose")
def search_pharmacies(draft_id: int):
    """Pharmacies at the vendor by name or ZIP code (htmx; the page without script)."""
    actor = current_actor()
    try:
        services.get_draft_for(actor, draft_id)
    except Refused:
        abort(409)
    form = PharmacySearchForm()
    error, pharmacies = None, []
    try:
        pharmacies = services.search_pharmacies(
            actor, form.pharmacy_name.data or "", form.pharmacy_zip.data or ""
        )
    except Refused as refused:
        error = refused.message
    if is_htmx_request():
        return render(
            "prescriptions/compose/_pharmacy_results.html",
            draft_id=draft_id,
            pharmacies=pharmacies,
            error=error,
        )
    page = services.open_draft(actor, draft_id)
    return _render_page(
        page,
        _sig_form(page.draft),
        _details_form(page.draft, page.diagnosis_choices),
        pharmacy_form=form,
        pharmacies=pharmacies,
        pharmacy_error=error,
    )


@bp.post("/prescriptions/<int:draft_id>/pharmacy")
@require("rx.compose")
def choose_pharmacy(draft_id: int):
    """Put the chosen pharmacy on the draft."""
    pharmacy_id = parse_id(request.form.get("pharmacy_id"))
    if pharmacy_id is None:
        abort(400)
    try:
        services.choose_pharmacy(
            current_actor(), draft_id, pharmacy_id, request.form.get("pharmacy_label", ""), None
        )
    except Refused as refused:
        flash(refused.message, "danger")
    return redirect(compose_url(draft_id) + "#pharmacy", 303)


@bp.post("/prescriptions/<int:draft_id>/preferred-pharmacy")
@require("rx.compose")
def set_preferred_pharmacy(draft_id: int):
    """ "Set as preferred" on a pharmacy found: the patient's primary preferred pharmacy
    (synced to the vendor), and chosen for this prescription."""
    pharmacy_id = parse_id(request.form.get("pharmacy_id"))
    if pharmacy_id is None:
        abort(400)
    try:
        services.set_preferred_pharmacy(
            current_actor(), draft_id, pharmacy_id, request.form.get("pharmacy_label", "")
        )
    except Refused as refused:
        flash(refused.message, "danger")
    else:
        flash("Set as the patient's preferred pharmacy.", "success")
    return redirect(compose_url(draft_id) + "#pharmacy", 303)


@bp.post("/prescriptions/<int:draft_id>/preferred-pharmacies/<int:preferred_id>/remove")
@require("rx.compose")
def remove_preferred_pharmacy(draft_id: int, preferred_id: int):
    """Remove one of the patient's preferred pharmacies (confirmed on the page; in the
    portal only: the vendor has no call for it)."""
    try:
        removed = services.remove_preferred_pharmacy(current_actor(), draft_id, preferred_id)
    except Refused as refused:
        flash(refused.message, "danger")
    else:
        flash(
            f"{removed} is no longer one of the patient's preferred pharmacies here. "
            "The e-prescribing service keeps it on its own record of the patient.",
            "success",
        )
    return redirect(compose_url(draft_id) + "#pharmacy", 303)


# --- favourites --------------------------------------------------------------------------------


@bp.post("/prescriptions/<int:draft_id>/favorites")
@require("rx.compose")
def save_favorite(draft_id: int):
    """Save the draft's drug, directions, quantity and refills as a favourite."""
    actor = current_actor()
    form = FavoriteForm()
    try:
        services.save_favorite(actor, draft_id, form.label.data or "")
    except Refused as refused:
        if is_htmx_request():
            return render(
                "prescriptions/compose/_favorites.html",
                draft_id=draft_id,
                favorites=services.favorites_of(actor),
                favorite_form=form,
                favorite_error=refused.message,
                status=refused.status,
            )
        flash(refused.message, "danger")
        return redirect(compose_url(draft_id), 303)
    if is_htmx_request():
        return render(
            "prescriptions/compose/_favorites.html",
            draft_id=draft_id,
            favorites=services.favorites_of(actor),
            favorite_form=FavoriteForm(formdata=None),
            favorite_saved=True,
        )
    flash("Saved as a favourite.", "success")
    return redirect(compose_url(draft_id), 303)


@bp.post("/prescriptions/<int:draft_id>/favorites/<int:favorite_id>")
@require("rx.compose")
def use_favorite(draft_id: int, favorite_id: int):
    """Fill the draft from one of the prescriber's favourites."""
    try:
        services.use_favorite(current_actor(), draft_id, favorite_id, None)
    except Refused as refused:
        flash(refused.message, "danger")
    return redirect(compose_url(draft_id) + "#directions", 303)

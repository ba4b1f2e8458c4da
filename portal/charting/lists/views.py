"""Pages of the problem, allergy and medication lists, the ICD-10-CM search, and the
encounter page's "diagnoses addressed" and medication reconciliation sections.

Thin views: load (through portal.patients.services.get_patient_for, inside the services) ->
authorize (@require) -> call a service in portal.charting.lists.services -> render. Refused
input answers 422 with what was typed kept; a stale edit form answers 409 with the current
values beside the user's.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, request, url_for

from portal.auth.permissions import permissions_of_current_user, require
from portal.charting import bp
from portal.charting.encounters.services import get_encounter_for
from portal.charting.encounters.views import encounter_section
from portal.charting.lists import services as lists
from portal.charting.lists.forms import (
    COMMON_ROUTES,
    AllergyForm,
    DiagnosesForm,
    FavouriteDiagnosisForm,
    MedicationForm,
    ProblemForm,
    ReconcileForm,
    StopMedicationForm,
)
from portal.charting.lists.stop_offers import offer_after_stop
from portal.charting.models import (
    ALLERGY_CRITICALITIES,
    ALLERGY_SEVERITIES,
    ALLERGY_STATUSES,
    MEDICATION_SOURCES,
    MEDICATION_STATUSES,
    PROBLEM_STATUSES,
    RECONCILIATION_ACTIONS,
    SUBSTANCE_KINDS,
)
from portal.clinic.clock import clinic_today
from portal.patients.services import get_patient_for
from portal.terminology import icd10
from portal.terminology.allergy_classes import class_names
from portal.terminology.rxnorm import DRUG_INGREDIENT_NAMES
from portal.transaction import Refused
from portal.web import attach_error, current_actor, is_htmx_request, render


@bp.app_context_processor
def lists_globals() -> dict:
    """The banner (on every patient page, for every role that sees it) asks for the
    patient's allergy state; the lists' pages need their labels."""
    return {
        "banner_allergy_state": lists.allergy_state,
        "problem_statuses": PROBLEM_STATUSES,
        "substance_kinds": SUBSTANCE_KINDS,
        "allergy_severities": ALLERGY_SEVERITIES,
        "allergy_criticalities": ALLERGY_CRITICALITIES,
        "allergy_statuses": ALLERGY_STATUSES,
        "medication_statuses": MEDICATION_STATUSES,
        "medication_sources": MEDICATION_SOURCES,
        "reconciliation_actions": RECONCILIATION_ACTIONS,
        "drug_ingredient_names": DRUG_INGREDIENT_NAMES,
        "allergy_class_names": class_names(),
        "medication_routes": COMMON_ROUTES,
        "new_problem_form": _new_encounter_problem_form,
        "my_favourite_diagnoses": _my_favourite_diagnoses,
        "revised_fields": lists.REVISED_FIELDS,
        "shown_value": lists.shown_value,
    }


def _my_favourite_diagnoses() -> list:
    """The signed-in prescriber's favourites, offered beside the problem forms' search."""
    actor = current_actor()
    return lists.favourite_diagnoses(actor) if actor.has_permission("chart.sign") else []


def _new_encounter_problem_form() -> ProblemForm:
    return ProblemForm(formdata=None, prefix="encounter-problem")


def _dates(patient) -> dict:
    return {"birth_date": patient.birth_date, "today": clinic_today()}


# ---------------------------------------------------------------------------------------
# ICD-10-CM search


@bp.before_app_request
def warm_up_icd10() -> None:
    """Start building the ICD-10-CM index with the process's first request, in the
    background, so that no clinician's first search waits seconds for it. (Not at import
    or in create_app: CLI commands and gunicorn's master never search.) Tests keep it on:
    a browser test's live server shares the test's process, and its first search must not
    wait for a build either; ``ICD10_WARM_UP = False`` turns it off."""
    if current_app.config.get("ICD10_WARM_UP", True):
        icd10.warm_up()


@bp.get("/icd10")
@require("chart.read")
def icd10_search():
    """Billable ICD-10-CM codes matching ``q`` (a code prefix or words; not patient data),
    as options for the search-as-you-type list; the full page also lists the user's
    favourites and lets a prescriber star and unstar codes."""
    query = request.args.get("q", "")
    actor = current_actor()
    return render(
        "charting/lists/problems_icd10.html",
        fragment="charting/lists/_problems_icd10_results.html",
        query=query,
        results=lists.search_diagnoses(actor, query),
        favourites=[] if is_htmx_request() else lists.favourite_diagnoses(actor),
        favourite_form=FavouriteDiagnosisForm(formdata=None),
    )


def _back_to_search(form: FavouriteDiagnosisForm):
    query = (form.q.data or "").strip()
    return redirect(url_for("charting.icd10_search", q=query or None), code=303)


@bp.post("/icd10/favourites")
@require("chart.sign")
def star_diagnosis():
    """Add a code to the prescriber's favourites: offered first in their searches."""
    form = FavouriteDiagnosisForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        diagnosis = lists.star_diagnosis(current_actor(), form.icd10_code.data)
    except Refused as refused:
        flash(refused.message, "danger")
        return _back_to_search(form)
    flash(f"Added to your favourites: {diagnosis.code} {diagnosis.description}.", "success")
    return _back_to_search(form)


@bp.post("/icd10/favourites/remove")
@require("chart.sign")
def unstar_diagnosis():
    """Remove a code from the prescriber's favourites."""
    form = FavouriteDiagnosisForm()
    if not form.validate_on_submit():
        abort(400)
    lists.unstar_diagnosis(current_actor(), form.icd10_code.data)
    flash(f"Removed from your favourites: {form.icd10_code.data.strip().upper()}.", "success")
    return _back_to_search(form)


# ---------------------------------------------------------------------------------------
# Problems


def _problems_page(patient_id: int, form: ProblemForm | None = None, status: int = 200):
    patient, problems = lists.view_problems(current_actor(), patient_id)
    form = form or ProblemForm(formdata=None)
    return render(
        "charting/lists/problems.html", patient=patient, problems=problems, form=form, status=status
    )


@bp.get("/patients/<int:patient_id>/problems")
@require("chart.read")
def problems(patient_id: int):
    """The problem list: active first, then inactive and resolved; the add form below."""
    return _problems_page(patient_id)


@bp.post("/patients/<int:patient_id>/problems")
@require("chart.write")
def add_problem(patient_id: int):
    """Add a problem coded with a billable ICD-10-CM code."""
    patient = get_patient_for(current_actor(), patient_id)
    form = ProblemForm(**_dates(patient))
    if not form.validate():
        return _problems_page(patient_id, form, 422)
    try:
        problem = lists.add_problem(current_actor(), patient_id, form.values())
    except Refused as error:
        attach_error(form, error)
        return _problems_page(patient_id, form, 422)
    flash(f"Problem added: {problem.icd10_code} {problem.description}.", "success")
    return redirect(url_for("charting.problems", patient_id=patient_id), code=303)


@bp.route("/patients/<int:patient_id>/problems/<int:problem_id>", methods=["GET", "POST"])
@require("chart.write")
def edit_problem(patient_id: int, problem_id: int):
    """Edit a problem's code, onset, status or comment."""
    patient, problem = lists.load_item(current_actor(), patient_id, "problem", problem_id)
    if request.method != "POST":
        form = ProblemForm(
            formdata=None,
            data={
                "icd10_code": problem.icd10_code,
                "onset_date": problem.onset_date,
                "status": problem.status,
                "comment": problem.comment,
                "version": problem.version,
            },
        )
        return render("charting/lists/problems_edit.html", patient=patient, item=problem, form=form)
    form = ProblemForm(**_dates(patient))
    if not form.validate():
        return render(
            "charting/lists/problems_edit.html",
            patient=patient,
            item=problem,
            form=form,
            status=422,
        )
    try:
        changed = lists.update_problem(
            current_actor(), patient_id, problem_id, form.version.data, form.values()
        )
    except lists.StaleEdit as stale:
        return _stale("charting/lists/problems_edit.html", patient, form, stale)
    except Refused as error:
        attach_error(form, error)
        return render(
            "charting/lists/problems_edit.html",
            patient=patient,
            item=problem,
            form=form,
            status=422,
        )
    flash("Problem saved." if changed else "Nothing changed.", "success")
    return redirect(url_for("charting.problems", patient_id=patient_id), code=303)


def _show_version(form, version: int) -> None:
    """Put ``version`` in the form's hidden field (which otherwise shows what was posted)."""
    form.version.data = version
    form.version.raw_data = [str(version)]


def _stale(template: str, patient, form, stale: lists.StaleEdit):
    """The user's input again, with the message and the values someone else saved; the
    form now carries the current version, so saving again is a deliberate overwrite."""
    _show_version(form, stale.current.version)
    form.form_errors.append(stale.message)
    return render(template, patient=patient, item=stale.current, form=form, stale=True, status=409)


@bp.get("/patients/<int:patient_id>/problems/<int:problem_id>/history")
@require("chart.read")
def problem_history(patient_id: int, problem_id: int):
    """Every change to one problem, oldest first."""
    return _history(patient_id, "problem", problem_id)


def _history(patient_id: int, item_type: str, item_id: int):
    patient, item, revisions = lists.item_history(current_actor(), patient_id, item_type, item_id)
    return render(
        "charting/lists/lists_history.html",
        patient=patient,
        item=item,
        item_type=item_type,
        revisions=[
            (revision, lists.describe_revision(item_type, revision)) for revision in revisions
        ],
    )


# ---------------------------------------------------------------------------------------
# Allergies


def _allergies_page(patient_id: int, form: AllergyForm | None = None, status: int = 200):
    patient, allergies, nka = lists.view_allergies(current_actor(), patient_id)
    form = form or AllergyForm(formdata=None)
    return render(
        "charting/lists/allergies.html",
        patient=patient,
        allergies=allergies,
        nka=nka,
        form=form,
        status=status,
    )


@bp.get("/patients/<int:patient_id>/allergies")
@require("chart.read")
def allergies(patient_id: int):
    """Allergies and intolerances, or the dated "no known allergies" statement."""
    return _allergies_page(patient_id)


@bp.post("/patients/<int:patient_id>/allergies")
@require("chart.write")
def add_allergy(patient_id: int):
    """Record an allergy (it replaces a "no known allergies" statement)."""
    patient = get_patient_for(current_actor(), patient_id)
    form = AllergyForm(**_dates(patient))
    if not form.validate():
        return _allergies_page(patient_id, form, 422)
    allergy = lists.add_allergy(current_actor(), patient_id, form.values())
    flash(f"Allergy recorded: {allergy.substance}.", "success")
    return redirect(url_for("charting.allergies", patient_id=patient_id), code=303)


@bp.post("/patients/<int:patient_id>/allergies/none")
@require("chart.write")
def record_no_known_allergies(patient_id: int):
    """The patient was asked and has no known allergies (dated, with who recorded it)."""
    try:
        lists.record_no_known_allergies(current_actor(), patient_id)
    except Refused as error:
        flash(error.message, "danger")
        return _allergies_page(patient_id, status=error.status)
    flash("Recorded: no known allergies.", "success")
    return redirect(url_for("charting.allergies", patient_id=patient_id), code=303)


@bp.route("/patients/<int:patient_id>/allergies/<int:allergy_id>", methods=["GET", "POST"])
@require("chart.write")
def edit_allergy(patient_id: int, allergy_id: int):
    """Edit an allergy; a form older than the stored allergy answers 409."""
    patient, allergy = lists.load_item(current_actor(), patient_id, "allergy", allergy_id)
    if request.method != "POST":
        form = AllergyForm(formdata=None, data=AllergyForm.data_of(allergy))
        return render(
            "charting/lists/allergies_edit.html", patient=patient, item=allergy, form=form
        )
    form = AllergyForm(**_dates(patient))
    if not form.validate():
        return render(
            "charting/lists/allergies_edit.html",
            patient=patient,
            item=allergy,
            form=form,
            status=422,
        )
    try:
        changed = lists.update_allergy(
            current_actor(), patient_id, allergy_id, form.version.data, form.values()
        )
    except lists.StaleEdit as stale:
        return _stale("charting/lists/allergies_edit.html", patient, form, stale)
    flash("Allergy saved." if changed else "Nothing changed.", "success")
    return redirect(url_for("charting.allergies", patient_id=patient_id), code=303)


@bp.get("/patients/<int:patient_id>/allergies/<int:allergy_id>/history")
@require("chart.read")
def allergy_history(patient_id: int, allergy_id: int):
    """Every change to one allergy, oldest first."""
    return _history(patient_id, "allergy", allergy_id)


# ---------------------------------------------------------------------------------------
# Medications


def _medications_page(patient_id: int, form: MedicationForm | None = None, status: int = 200):
    patient, medications = lists.view_medications(current_actor(), patient_id)
    form = form or MedicationForm(formdata=None)
    return render(
        "charting/lists/medications.html",
        patient=patient,
        medications=medications,
        form=form,
        status=status,
    )


@bp.get("/patients/<int:patient_id>/medications")
@require("chart.read")
def medications(patient_id: int):
    """Active and past medications; the add form below."""
    return _medications_page(patient_id)


@bp.post("/patients/<int:patient_id>/medications")
@require("chart.write")
def add_medication(patient_id: int):
    """Add a medication (coded with RxNorm when listed)."""
    patient = get_patient_for(current_actor(), patient_id)
    form = MedicationForm(**_dates(patient))
    if not form.validate():
        return _medications_page(patient_id, form, 422)
    medication = lists.add_medication(current_actor(), patient_id, form.values())
    flash(f"Medication added: {medication.drug}.", "success")
    return redirect(url_for("charting.medications", patient_id=patient_id), code=303)


def _medication_data(medication) -> dict:
    names = ("drug", "dose", "route", "frequency", "start_date", "stop_date", "prescriber")
    data = {name: getattr(medication, name) for name in names}
    data.update(
        source=medication.source,
        status=medication.status,
        stop_reason=medication.stop_reason,
        version=medication.version,
    )
    return data


@bp.route("/patients/<int:patient_id>/medications/<int:medication_id>", methods=["GET", "POST"])
@require("chart.write")
def edit_medication(patient_id: int, medication_id: int):
    """Edit a medication; a form older than the stored one answers 409."""
    patient, medication = lists.load_item(current_actor(), patient_id, "medication", medication_id)
    template = "charting/lists/medications_edit.html"
    if request.method != "POST":
        form = MedicationForm(formdata=None, data=_medication_data(medication))
        return render(template, patient=patient, item=medication, form=form)
    form = MedicationForm(**_dates(patient))
    if not form.validate():
        return render(template, patient=patient, item=medication, form=form, status=422)
    try:
        changed = lists.update_medication(
            current_actor(), patient_id, medication_id, form.version.data, form.values()
        )
    except lists.StaleEdit as stale:
        return _stale(template, patient, form, stale)
    flash("Medication saved." if changed else "Nothing changed.", "success")
    return redirect(url_for("charting.medications", patient_id=patient_id), code=303)


@bp.route(
    "/patients/<int:patient_id>/medications/<int:medication_id>/stop", methods=["GET", "POST"]
)
@require("chart.write")
def stop_medication(patient_id: int, medication_id: int):
    """Stop an active medication: the date and the reason are required."""
    patient, medication = lists.load_item(current_actor(), patient_id, "medication", medication_id)
    template = "charting/lists/medications_stop.html"
    if request.method != "POST":
        form = StopMedicationForm(
            formdata=None, data={"stop_date": clinic_today(), "version": medication.version}
        )
        return render(template, patient=patient, item=medication, form=form)
    form = StopMedicationForm(**_dates(patient))
    if not form.validate():
        return render(template, patient=patient, item=medication, form=form, status=422)
    try:
        lists.stop_medication(
            current_actor(),
            patient_id,
            medication_id,
            form.version.data,
            form.stop_date.data,
            form.reason.data,
        )
    except lists.StaleEdit as stale:
        return _stale(template, patient, form, stale)
    except Refused as error:
        attach_error(form, error)
        return render(template, patient=patient, item=medication, form=form, status=422)
    flash(f"Medication stopped: {medication.drug}.", "success")
    # Another domain may have something to do about it (cancel its open prescription).
    offer = offer_after_stop(medication_id, permissions_of_current_user().__contains__)
    if offer is not None:
        flash(offer.message, "warning")
        return redirect(offer.url, code=303)
    return redirect(url_for("charting.medications", patient_id=patient_id), code=303)


@bp.get("/patients/<int:patient_id>/medications/<int:medication_id>/history")
@require("chart.read")
def medication_history(patient_id: int, medication_id: int):
    """Every change to one medication, oldest first."""
    return _history(patient_id, "medication", medication_id)


# ---------------------------------------------------------------------------------------
# The encounter page's sections (htmx; without JavaScript the page is loaded again)


@encounter_section
def lists_section(actor, page) -> dict:
    """The encounter page's problem and medication sections."""
    return lists.encounter_lists_context(page.encounter)


def _encounter_section(encounter_id: int, fragment: str, status: int = 200, **shown):
    if not is_htmx_request():
        if status >= 400:
            abort(status)
        return redirect(url_for("charting.encounter_page", encounter_id=encounter_id), code=303)
    encounter = get_encounter_for(current_actor(), encounter_id)
    return render(fragment, status=status, **lists.encounter_lists_context(encounter, **shown))


@bp.post("/encounters/<int:encounter_id>/diagnoses")
@require("chart.write")
def save_diagnoses(encounter_id: int):
    """The problems this visit addressed (ticked from the active problem list)."""
    form = DiagnosesForm()
    fragment = "charting/lists/_encounter_problems.html"
    if not form.validate():
        # A garbled list is refused, never read as "nothing ticked" (which clears them all).
        return _encounter_section(encounter_id, fragment, 422, diagnoses=form)
    try:
        lists.set_diagnoses_addressed(current_actor(), encounter_id, form.problem_ids.data or [])
    except Refused as error:
        attach_error(form, error)
        return _encounter_section(encounter_id, fragment, 422, diagnoses=form)
    return _encounter_section(encounter_id, fragment, saved="diagnoses")


@bp.post("/encounters/<int:encounter_id>/problems")
@require("chart.write")
def add_encounter_problem(encounter_id: int):
    """Add a new problem from the visit; it is marked addressed by this encounter."""
    encounter = get_encounter_for(current_actor(), encounter_id)
    patient = get_patient_for(current_actor(), encounter.patient_id)
    form = ProblemForm(prefix="encounter-problem", **_dates(patient))
    fragment = "charting/lists/_encounter_problems.html"
    if not form.validate():
        return _encounter_section(encounter_id, fragment, 422, new_problem=form)
    try:
        lists.add_problem(current_actor(), patient.id, form.values(), encounter_id=encounter_id)
    except Refused as error:
        attach_error(form, error)
        return _encounter_section(encounter_id, fragment, 422, new_problem=form)
    return _encounter_section(encounter_id, fragment, saved="problem")


@bp.post("/encounters/<int:encounter_id>/medications/<int:medication_id>/reconcile")
@require("chart.write")
def reconcile_medication(encounter_id: int, medication_id: int):
    """Continue, stop (with a reason) or change one medication at this visit."""
    get_encounter_for(current_actor(), encounter_id)  # 404 before reading the form
    form = ReconcileForm(prefix=f"med-{medication_id}")
    fragment = "charting/lists/_encounter_medications.html"
    if not form.validate():
        return _encounter_section(encounter_id, fragment, 422, **{f"med_{medication_id}": form})
    try:
        lists.reconcile_medication(
            current_actor(),
            encounter_id,
            medication_id,
            form.version.data,
            form.action.data,
            reason=form.reason.data,
            changes=form.changes(),
            today=clinic_today(),
        )
    except Refused as error:
        attach_error(form, error)
        if isinstance(error, lists.StaleEdit):
            # The section shows the medication as it is now; saving again is deliberate.
            _show_version(form, error.current.version)
        return _encounter_section(
            encounter_id, fragment, error.status, **{f"med_{medication_id}": form}
        )
    return _encounter_section(encounter_id, fragment)

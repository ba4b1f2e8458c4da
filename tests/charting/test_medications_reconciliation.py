"""A visit's lists: diagnoses addressed (ticked or added there) and medication reconciliation
(continue / stop with a reason / change), through the encounter sections' htmx posts."""

from __future__ import annotations

import pytest

from portal.charting.lists import services as clinical_lists
from portal.charting.models import (
    ChartItemRevision,
    Medication,
    MedicationReconciliation,
    Problem,
    encounter_problems,
)
from portal.extensions import db
from tests.charting.lists_helpers import audit_events, make_encounter, make_patient, rows, text_of
from tests.charting.race_helpers import interleave


@pytest.fixture
def visit(app, signed_in):
    """A patient with two medications and two problems, an encounter, a signed-in nurse."""
    patient_id = make_patient(app)
    nurse = signed_in("nurse")
    for drug, dose in (("lisinopril", "10 mg"), ("aspirin", "81 mg")):
        nurse.post_form(
            f"/chart/patients/{patient_id}/medications",
            {
                "drug": drug,
                "dose": dose,
                "route": "oral",
                "frequency": "daily",
                "source": "self_reported",
                "status": "active",
            },
        )
    for code in ("I10", "E78.5"):
        nurse.post_form(
            f"/chart/patients/{patient_id}/problems", {"icd10_code": code, "status": "active"}
        )
    meds = {m.drug: m.id for m in rows(app, Medication, patient_id=patient_id)}
    problems = {p.icd10_code: p.id for p in rows(app, Problem, patient_id=patient_id)}
    return patient_id, make_encounter(app, patient_id), nurse, meds, problems


def addressed(app, encounter_id: int) -> set[int]:
    with app.app_context():
        return {
            row.problem_id
            for row in db.session.execute(
                encounter_problems.select().where(encounter_problems.c.encounter_id == encounter_id)
            )
        }


def test_the_sections_list_active_problems_and_medications(app, visit):
    _, encounter_id, nurse, meds, _ = visit
    html = text_of(nurse.htmx_post(f"/chart/encounters/{encounter_id}/diagnoses", {}))
    assert "Essential (primary) hypertension" in html and 'name="problem_ids"' in html
    assert "<html" not in html  # the section alone, swapped in place
    html = text_of(decide(nurse, encounter_id, meds["aspirin"], action="continue"))
    assert "lisinopril" in html and "aspirin" in html
    assert f'name="med-{meds["lisinopril"]}-action"' in html
    assert "Continue — Sam Okafor" in html


def test_tick_the_diagnoses_addressed(app, visit):
    _, encounter_id, nurse, _, problems = visit
    response = nurse.htmx_post(
        f"/chart/encounters/{encounter_id}/diagnoses", {"problem_ids": [problems["I10"]]}
    )
    assert response.status_code == 200
    assert "Diagnoses addressed saved" in text_of(response)
    assert f'id="addressed-{problems["I10"]}" checked' in text_of(response)
    assert addressed(app, encounter_id) == {problems["I10"]}
    nurse.htmx_post(f"/chart/encounters/{encounter_id}/diagnoses", {})
    assert addressed(app, encounter_id) == set()
    assert any(
        action == "encounter.diagnoses_update" and detail == f"problems {problems['I10']}"
        for action, _, detail in audit_events(app, "problem list")
    )


def test_another_patients_problem_cannot_be_addressed(app, visit):
    _, encounter_id, nurse, _, _ = visit
    other = make_patient(app, family="Other")
    nurse.post_form(
        f"/chart/patients/{other}/problems", {"icd10_code": "J45.909", "status": "active"}
    )
    (foreign,) = rows(app, Problem, patient_id=other)
    response = nurse.htmx_post(
        f"/chart/encounters/{encounter_id}/diagnoses", {"problem_ids": [foreign.id]}
    )
    assert response.status_code == 422
    assert "Choose problems from this patient" in text_of(response)
    assert addressed(app, encounter_id) == set()


@pytest.mark.parametrize("garbled", ["abc", "", "99999999999999999999999", "-3"])
def test_a_garbled_diagnoses_post_is_refused_and_changes_nothing(app, visit, garbled):
    """A value that is no problem id (a broken page, a crafted post) is refused beside the
    list; it used to read as "nothing ticked" and cleared the visit's diagnoses (or, beyond
    the database's integer range, crashed)."""
    _, encounter_id, nurse, _, problems = visit
    url = f"/chart/encounters/{encounter_id}/diagnoses"
    assert nurse.htmx_post(url, {"problem_ids": [problems["I10"]]}).status_code == 200
    refused = nurse.htmx_post(url, {"problem_ids": [problems["E78.5"], garbled]})
    assert refused.status_code == 422
    assert "Choose problems from this patient" in text_of(refused)
    assert addressed(app, encounter_id) == {problems["I10"]}


def test_add_a_new_problem_from_the_visit(app, visit):
    patient_id, encounter_id, nurse, _, _ = visit
    response = nurse.htmx_post(
        f"/chart/encounters/{encounter_id}/problems",
        {"encounter-problem-icd10_code": "J45.909", "encounter-problem-status": "active"},
    )
    assert response.status_code == 200
    new = next(p for p in rows(app, Problem, patient_id=patient_id) if p.icd10_code == "J45.909")
    assert addressed(app, encounter_id) == {new.id}
    refused = nurse.htmx_post(
        f"/chart/encounters/{encounter_id}/problems",
        {"encounter-problem-icd10_code": "J45", "encounter-problem-comment": "kept"},
    )
    assert refused.status_code == 422
    assert "Not a billable ICD-10-CM code" in text_of(refused) and "kept" in text_of(refused)


def decide(nurse, encounter_id, medication_id, **values):
    prefix = f"med-{medication_id}-"
    data = {prefix + name: value for name, value in {"version": "1", **values}.items()}
    return nurse.htmx_post(
        f"/chart/encounters/{encounter_id}/medications/{medication_id}/reconcile", data
    )


def test_continue_stop_and_change(app, visit):
    _, encounter_id, nurse, meds, _ = visit
    assert decide(nurse, encounter_id, meds["aspirin"], action="continue").status_code == 200

    refused = decide(nurse, encounter_id, meds["lisinopril"], action="stop", reason="")
    assert refused.status_code == 422 and "Say why" in text_of(refused)
    assert (
        decide(nurse, encounter_id, meds["lisinopril"], action="stop", reason="cough").status_code
        == 200
    )

    lisinopril = rows(app, Medication, id=meds["lisinopril"])[0]
    assert (lisinopril.status, lisinopril.stop_reason) == ("stopped", "cough")
    assert lisinopril.stop_date is not None

    # Every decision moves the version on, "continue" too: the section now shows version 2.
    response = decide(
        nurse, encounter_id, meds["aspirin"], action="change", dose="325 mg", version="2"
    )
    assert response.status_code == 200
    html = text_of(response)
    assert "Change" in html and "Sam Okafor" in html
    aspirin = rows(app, Medication, id=meds["aspirin"])[0]
    assert (aspirin.dose, aspirin.frequency, aspirin.version) == ("325 mg", "daily", 3)
    revision = rows(app, ChartItemRevision, item_type="medication", item_id=meds["aspirin"])[-1]
    assert (revision.before, revision.after) == ({"dose": "81 mg"}, {"dose": "325 mg"})

    decisions = rows(app, MedicationReconciliation, encounter_id=encounter_id)
    assert sorted((d.medication_id, d.action, d.reason) for d in decisions) == sorted(
        [
            (meds["aspirin"], "continue", None),
            (meds["lisinopril"], "stop", "cough"),
            (meds["aspirin"], "change", None),
        ]
    )
    assert all(d.recorded_by_id is not None and d.recorded_at is not None for d in decisions)
    details = [
        detail
        for action, _, detail in audit_events(app, "medications")
        if action == "medication.reconcile"
    ]
    assert f"encounter {encounter_id} medication {meds['lisinopril']} stop" in details


def test_a_change_that_changes_nothing_is_refused(app, visit):
    _, encounter_id, nurse, meds, _ = visit
    response = decide(nurse, encounter_id, meds["aspirin"], action="change", dose="81 mg")
    assert response.status_code == 422
    assert "Change the dose, route or frequency" in text_of(response)
    assert rows(app, MedicationReconciliation, encounter_id=encounter_id) == []


def test_a_stale_decision_is_refused_not_applied(app, visit):
    _, encounter_id, nurse, meds, _ = visit
    decide(nurse, encounter_id, meds["aspirin"], action="change", dose="162 mg")
    response = decide(nurse, encounter_id, meds["aspirin"], action="change", dose="325 mg")
    assert response.status_code == 409
    assert "Someone else changed this medication" in text_of(response)
    assert rows(app, Medication, id=meds["aspirin"])[0].dose == "162 mg"


def reconcile_events(app) -> list[str]:
    return [
        detail
        for action, _, detail in audit_events(app, "medications")
        if action == "medication.reconcile"
    ]


@pytest.mark.parametrize(
    "values",
    [
        {"action": "continue"},
        {"action": "stop", "reason": "bleeding risk"},
        {"action": "change", "dose": "162 mg"},
    ],
    ids=["continue", "stop", "change"],
)
def test_a_double_submitted_decision_is_recorded_once(app, visit, values):
    """The button pressed twice (or the form sent again) before the first answer came:
    the second post is answered like the first, and nothing more is recorded."""
    _, encounter_id, nurse, meds, _ = visit
    first = decide(nurse, encounter_id, meds["aspirin"], **values)
    second = decide(nurse, encounter_id, meds["aspirin"], **values)
    assert (first.status_code, second.status_code) == (200, 200)
    assert "Someone else changed" not in text_of(second)
    decisions = rows(app, MedicationReconciliation, encounter_id=encounter_id)
    assert [(d.medication_id, d.action) for d in decisions] == [(meds["aspirin"], values["action"])]
    assert len(reconcile_events(app)) == 1
    aspirin = rows(app, Medication, id=meds["aspirin"])[0]
    assert aspirin.version == 2  # moved on once, by the one decision
    # Pressing the same choice again on the section as it now stands changes nothing either.
    again = decide(nurse, encounter_id, meds["aspirin"], **{**values, "version": "2"})
    assert again.status_code == 200
    assert len(rows(app, MedicationReconciliation, encounter_id=encounter_id)) == 1


def test_a_different_decision_after_a_continue_is_recorded(app, visit, signed_in):
    _, encounter_id, nurse, meds, _ = visit
    assert decide(nurse, encounter_id, meds["aspirin"], action="continue").status_code == 200
    # The section now carries version 2: a later, different decision is a decision of its own.
    stopped = decide(
        nurse, encounter_id, meds["aspirin"], action="stop", reason="bleeding", version="2"
    )
    assert stopped.status_code == 200
    decisions = rows(app, MedicationReconciliation, encounter_id=encounter_id)
    assert [d.action for d in decisions] == ["continue", "stop"]
    # A colleague's continue of lisinopril after the nurse's is theirs to record.
    assert decide(nurse, encounter_id, meds["lisinopril"], action="continue").status_code == 200
    colleague = signed_in("prescriber")
    again = decide(colleague, encounter_id, meds["lisinopril"], action="continue", version="2")
    assert again.status_code == 200
    assert len(rows(app, MedicationReconciliation, medication_id=meds["lisinopril"])) == 2


def test_a_repeat_from_a_form_older_than_the_decision_is_stale(app, visit):
    """Not a repeat when the medication changed between: the old form's choice is refused."""
    patient_id, encounter_id, nurse, meds, _ = visit
    decide(nurse, encounter_id, meds["aspirin"], action="continue")
    nurse.post_form(
        f"/chart/patients/{patient_id}/medications/{meds['aspirin']}",
        {"drug": "aspirin", "dose": "325 mg", "source": "self_reported", "status": "active"}
        | {"route": "oral", "frequency": "daily", "version": "2"},
    )
    response = decide(nurse, encounter_id, meds["aspirin"], action="continue")
    assert response.status_code == 409
    assert "Someone else changed this medication" in text_of(response)
    assert len(rows(app, MedicationReconciliation, encounter_id=encounter_id)) == 1


@pytest.mark.postgres_only
def test_two_identical_decisions_racing_record_one(app, visit, monkeypatch):
    """The double submit with both posts in flight at once: the second has passed every
    check when the first commits. Still one decision, and both answered as done."""
    _, encounter_id, nurse, meds, _ = visit
    race = interleave(
        monkeypatch,
        clinical_lists,
        "utcnow",
        lambda: decide(nurse, encounter_id, meds["aspirin"], action="continue"),
    )
    first = decide(nurse, encounter_id, meds["aspirin"], action="continue")
    assert (first.status_code, race.finish().status_code) == (200, 200)
    assert len(rows(app, MedicationReconciliation, encounter_id=encounter_id)) == 1
    assert len(reconcile_events(app)) == 1


@pytest.mark.postgres_only
def test_two_different_decisions_racing_record_one_and_refuse_the_other(
    app, visit, signed_in, monkeypatch
):
    """A nurse continues aspirin while the prescriber stops it from the same version: one
    decision wins; the other is refused as stale, never both recorded."""
    _, encounter_id, nurse, meds, _ = visit
    prescriber = signed_in("prescriber")
    race = interleave(
        monkeypatch,
        clinical_lists,
        "utcnow",
        lambda: decide(prescriber, encounter_id, meds["aspirin"], action="stop", reason="GI"),
    )
    first = decide(nurse, encounter_id, meds["aspirin"], action="continue")
    assert (race.finish().status_code, first.status_code) == (200, 409)
    decisions = rows(app, MedicationReconciliation, encounter_id=encounter_id)
    assert [d.action for d in decisions] == ["stop"]


def test_unknown_encounter_or_medication_is_404(app, visit):
    _, _, nurse, meds, _ = visit
    assert decide(nurse, 987654, meds["aspirin"], action="continue").status_code == 404
    other = make_patient(app, family="Other")
    other_encounter = make_encounter(app, other)
    assert decide(nurse, other_encounter, meds["aspirin"], action="continue").status_code == 404
    assert nurse.htmx_post("/chart/encounters/987654/diagnoses", {}).status_code == 404


def test_a_stopped_medication_cannot_be_reconciled_again(app, visit):
    _, encounter_id, nurse, meds, _ = visit
    decide(nurse, encounter_id, meds["aspirin"], action="stop", reason="bleeding risk")
    again = decide(nurse, encounter_id, meds["aspirin"], action="continue", version="2")
    assert again.status_code == 422
    assert "This medication is not active" in text_of(again)
    assert len(rows(app, MedicationReconciliation, encounter_id=encounter_id)) == 1


def test_a_refused_decision_keeps_what_was_typed_beside_the_errors(app, visit):
    """The section is re-shown with the choice, the typed values and each field's message."""
    _, encounter_id, nurse, meds, _ = visit
    medication_id = meds["lisinopril"]
    refused = decide(
        nurse,
        encounter_id,
        medication_id,
        action="change",
        reason="<script>alert(1)</script> side effects",
        dose="9" * 101,
        frequency="twice daily",
    )
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    prefix = f"med-{medication_id}-"
    assert (
        f'id="{prefix}action-2" name="{prefix}action" required type="radio" value="change" checked'
        in html
    )
    assert f'id="{prefix}dose-error">At most 100 characters.' in html
    assert "<details open>" in html, "the change fields are shown open with their error"
    assert 'aria-invalid="true" aria-describedby="' + prefix + 'dose-error"' in html
    assert 'value="twice daily"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; side effects" in html
    assert "<script>alert(1)" not in html
    assert rows(app, Medication, id=medication_id)[0].dose != "9" * 101

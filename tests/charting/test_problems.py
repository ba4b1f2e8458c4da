"""The problem list: add with a billable ICD-10-CM code, edit, history, stale forms, refusals."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal.charting.models import ChartItemRevision, Problem
from tests.charting.lists_helpers import audit_events, make_patient, rows, text_of, version_of


@pytest.fixture
def patient_id(app):
    return make_patient(app)


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


def add(client, patient_id, **values):
    data = {"icd10_code": "E11.9", "status": "active", "onset_date": "", "comment": ""}
    data.update(values)
    return client.post_form(f"/chart/patients/{patient_id}/problems", data)


def test_add_a_coded_problem(app, nurse, patient_id):
    response = add(nurse, patient_id, onset_date="2019-03-01", comment="diet controlled")
    assert response.status_code == 303
    page = text_of(nurse.get(response.location))
    assert "Type 2 diabetes mellitus without complications" in page
    assert "diet controlled" in page
    (problem,) = rows(app, Problem, patient_id=patient_id)
    assert (problem.icd10_code, problem.onset_date, problem.status) == (
        "E11.9",
        date(2019, 3, 1),
        "active",
    )
    (revision,) = rows(app, ChartItemRevision, item_type="problem", item_id=problem.id)
    assert revision.before is None
    assert revision.after["icd10_code"] == "E11.9" and revision.after["onset_date"] == "2019-03-01"
    events = audit_events(app, "problem list")
    assert (
        "problem.create",
        patient_id,
        "icd10 E11.9 fields "
        + ",".join(["icd10_code", "description", "onset_date", "status", "comment"]),
    ) in events
    assert not any("diet" in (detail or "") for _, _, detail in events)


def test_a_code_without_its_dot_is_accepted(app, nurse, patient_id):
    assert add(nurse, patient_id, icd10_code="i10").status_code == 303
    assert rows(app, Problem, patient_id=patient_id)[0].icd10_code == "I10"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"icd10_code": "E11"}, "Not a billable ICD-10-CM code"),
        ({"icd10_code": "Q99.999"}, "Not a billable ICD-10-CM code"),
        ({"icd10_code": ""}, "Choose a diagnosis from the search"),
        ({"onset_date": (date.today() + timedelta(days=3)).isoformat()}, "in the future"),
        ({"onset_date": "1950-01-01"}, "before the patient&#39;s birth"),
        ({"onset_date": "not a date"}, "Not a valid date"),
        ({"status": "cured"}, "Not a valid choice"),
        ({"comment": "x" * 5000}, "At most 1,000 characters"),
    ],
)
def test_bad_input_is_refused_beside_the_field_and_kept(app, nurse, patient_id, values, message):
    response = add(nurse, patient_id, **{"comment": "keep this", **values})
    assert response.status_code == 422
    html = text_of(response)
    assert message in html
    assert "is-invalid" in html
    if "comment" not in values:
        assert "keep this" in html
    assert rows(app, Problem, patient_id=patient_id) == []


def test_script_in_a_comment_is_inert(app, nurse, patient_id):
    add(nurse, patient_id, comment='<script>alert("x")</script><img src=x onerror=alert(1)>')
    html = text_of(nurse.get(f"/chart/patients/{patient_id}/problems"))
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert" in html


def test_active_problems_come_first(app, nurse, patient_id):
    add(nurse, patient_id, icd10_code="J45.909", status="resolved")
    add(nurse, patient_id, icd10_code="I10", status="active")
    add(nurse, patient_id, icd10_code="E78.5", status="inactive")
    html = text_of(nurse.get(f"/chart/patients/{patient_id}/problems"))
    table = html[html.index('id="problem-list"') :]
    assert table.index("I10") < table.index("E78.5") < table.index("J45.909")


def test_edit_then_history_shows_who_and_the_previous_value(app, signed_in, patient_id):
    doctor = signed_in("prescriber")
    add(doctor, patient_id, comment="first")
    (problem,) = rows(app, Problem, patient_id=patient_id)
    url = f"/chart/patients/{patient_id}/problems/{problem.id}"
    form = text_of(doctor.get(url))
    assert version_of(form) == "1"
    response = doctor.post_form(
        url,
        {
            "icd10_code": "E11.9",
            "status": "resolved",
            "onset_date": "",
            "comment": "better",
            "version": "1",
        },
    )
    assert response.status_code == 303
    (problem,) = rows(app, Problem, patient_id=patient_id)
    assert (problem.status, problem.comment, problem.version) == ("resolved", "better", 2)
    revisions = rows(app, ChartItemRevision, item_type="problem", item_id=problem.id)
    assert revisions[-1].before == {"status": "active", "comment": "first"}
    assert revisions[-1].after == {"status": "resolved", "comment": "better"}
    history = text_of(doctor.get(url + "/history"))
    assert "Jordan Lee" in history
    assert "Previous value" in history and "first" in history and "better" in history
    assert "Resolved" in history
    actions = [action for action, _, _ in audit_events(app, "problem list")]
    assert "problem.update" in actions and "problem.history_view" in actions


def test_a_stale_edit_form_is_refused_with_the_current_values(app, signed_in, patient_id):
    nurse, doctor = signed_in("nurse"), signed_in("prescriber")
    add(nurse, patient_id, comment="original")
    (problem,) = rows(app, Problem, patient_id=patient_id)
    url = f"/chart/patients/{patient_id}/problems/{problem.id}"
    values = {"icd10_code": "E11.9", "status": "active", "onset_date": "", "version": "1"}
    assert doctor.post_form(url, {**values, "comment": "doctor's words"}).status_code == 303
    response = nurse.post_form(url, {**values, "comment": "nurse's words"})
    assert response.status_code == 409
    html = text_of(response)
    assert "Someone else changed this problem" in html
    assert "nurse&#39;s words" in html and "doctor&#39;s words" in html  # both shown
    assert version_of(html) == "2"
    assert rows(app, Problem, patient_id=patient_id)[0].comment == "doctor's words"
    # Saving again from the refreshed form is a deliberate overwrite.
    assert (
        nurse.post_form(url, {**values, "version": "2", "comment": "nurse's words"}).status_code
        == 303
    )


def test_another_patients_problem_is_404(app, nurse, patient_id):
    other = make_patient(app, family="Other")
    add(nurse, other)
    (problem,) = rows(app, Problem, patient_id=other)
    assert nurse.get(f"/chart/patients/{patient_id}/problems/{problem.id}").status_code == 404
    assert (
        nurse.get(f"/chart/patients/{patient_id}/problems/{problem.id}/history").status_code == 404
    )
    assert nurse.get("/chart/patients/987654/problems").status_code == 404


def test_viewing_the_list_is_audited(app, nurse, patient_id):
    nurse.get(f"/chart/patients/{patient_id}/problems")
    assert ("problem.list_view", patient_id, None) in audit_events(app, "problem list")


def test_front_desk_and_admin_have_no_access(app, signed_in, patient_id):
    for role in ("front_desk", "admin"):
        assert signed_in(role).get(f"/chart/patients/{patient_id}/problems").status_code == 403

"""The diagnosis search as a clinician meets it (issue 14): a prescriber's favourites (star,
unstar, shown first and marked), the clinic's own use ranking its codes first, and the
counts kept as problems are recorded and addressed at visits."""

from __future__ import annotations

import re

import pytest

from portal.charting.lists import services as lists
from portal.charting.models import DiagnosisFavourite, DiagnosisUse, Problem
from portal.terminology import icd10
from tests.charting.lists_helpers import audit_events, make_encounter, make_patient, rows, text_of
from tests.charting.race_helpers import interleave


def option_codes(html: str) -> list[str]:
    return re.findall(r'role="option"[^>]*data-code="([^"]+)"', html)


def search(client, query: str) -> str:
    return text_of(client.get(f"/chart/icd10?q={query}", headers={"HX-Request": "true"}))


def add_problem(client, patient_id, code):
    data = {"icd10_code": code, "status": "active", "onset_date": "", "comment": ""}
    response = client.post_form(f"/chart/patients/{patient_id}/problems", data)
    assert response.status_code == 303


def uses(app) -> dict[str, int]:
    return {row.icd10_code: row.uses for row in rows(app, DiagnosisUse)}


def test_htn_and_plain_words_find_essential_hypertension_first(app, signed_in):
    nurse = signed_in("nurse")
    for query in ("HTN", "high+blood+pressure", "hypertension"):
        assert option_codes(search(nurse, query))[0] == "I10", query


def test_a_prescriber_stars_a_code_and_it_comes_first_marked(app, signed_in):
    doctor = signed_in("drlee")
    assert option_codes(search(doctor, "hypertension"))[0] == "I10"
    response = doctor.post_form("/chart/icd10/favourites", {"icd10_code": "i15.0", "q": "hyp"})
    assert response.status_code == 303 and "q=hyp" in response.location
    html = search(doctor, "hypertension")
    assert option_codes(html)[:2] == ["I15.0", "I10"]
    first = html[html.index('data-code="I15.0"') : html.index("</li>")]
    assert "favourite" in first
    # The page lists it under "Your favourite diagnoses", with a button to remove it.
    page = text_of(doctor.get("/chart/icd10"))
    favourites = page[page.index('id="favourite-diagnoses"') :]
    assert "I15.0" in favourites and "Remove I15.0 from favourites" in favourites
    # The problem forms offer it beside their search, to this prescriber only.
    patient_id = make_patient(app)
    problems_page = text_of(doctor.get(f"/chart/patients/{patient_id}/problems"))
    assert 'data-icd10-favourite data-code="I15.0"' in problems_page
    assert "data-icd10-favourite" not in text_of(
        signed_in("nurse").get(f"/chart/patients/{patient_id}/problems")
    )
    # Starring twice keeps one row; another prescriber's search is unchanged.
    doctor.post_form("/chart/icd10/favourites", {"icd10_code": "I15.0"})
    assert len(rows(app, DiagnosisFavourite, icd10_code="I15.0")) == 1
    assert option_codes(search(signed_in("nurse"), "hypertension"))[0] == "I10"
    events = audit_events(app, "diagnosis favourites")
    assert [(action, detail) for action, _, detail in events] == [
        ("diagnosis_favourite.add", "icd10 I15.0")
    ]
    doctor.post_form("/chart/icd10/favourites/remove", {"icd10_code": "I15.0"})
    assert option_codes(search(doctor, "hypertension"))[0] == "I10"
    assert rows(app, DiagnosisFavourite) == []
    assert audit_events(app, "diagnosis favourites")[-1][0] == "diagnosis_favourite.remove"


def test_only_billable_codes_can_be_starred(app, signed_in):
    doctor = signed_in("drlee")
    response = doctor.post_form("/chart/icd10/favourites", {"icd10_code": "E11"})
    assert response.status_code == 303
    assert "Not a billable ICD-10-CM code" in text_of(doctor.get(response.location))
    assert rows(app, DiagnosisFavourite) == []


def test_a_nurse_has_no_star_buttons(app, signed_in):
    nurse = signed_in("nurse")
    page = text_of(nurse.get("/chart/icd10?q=HTN"))
    assert "I10" in page and "to favourites" not in page
    assert nurse.post_form("/chart/icd10/favourites", {"icd10_code": "I10"}).status_code == 403


def test_the_clinics_own_use_ranks_its_codes_first_from_the_third_use(app, signed_in):
    nurse = signed_in("nurse")
    patients = [make_patient(app, given=f"P{n}") for n in range(3)]
    add_problem(nurse, patients[0], "K76.6")  # portal hypertension, once
    add_problem(nurse, patients[1], "K76.6")
    assert uses(app)["K76.6"] == 2
    assert option_codes(search(nurse, "hypertension"))[0] == "I10"  # a one-off does not jump
    add_problem(nurse, patients[2], "K76.6")
    assert option_codes(search(nurse, "hypertension"))[:2] == ["K76.6", "I10"]


def test_uses_count_problems_recoded_and_visits_that_address_them(app, signed_in):
    nurse = signed_in("nurse")
    patient_id = make_patient(app)
    add_problem(nurse, patient_id, "E11.9")
    (problem,) = rows(app, Problem, patient_id=patient_id)
    assert uses(app) == {"E11.9": 1}
    encounter_id = make_encounter(app, patient_id)
    url = f"/chart/encounters/{encounter_id}/diagnoses"
    nurse.htmx_post(url, {"problem_ids": [problem.id]})
    assert uses(app) == {"E11.9": 2}
    nurse.htmx_post(url, {"problem_ids": [problem.id]})  # saved again: not a new use
    assert uses(app) == {"E11.9": 2}
    edit = {"icd10_code": "E11.65", "status": "active", "onset_date": "", "comment": ""}
    edit["version"] = str(problem.version)
    response = nurse.post_form(f"/chart/patients/{patient_id}/problems/{problem.id}", edit)
    assert response.status_code == 303
    assert uses(app) == {"E11.9": 2, "E11.65": 1}  # recoded: the new code is in use


def test_a_problem_added_at_a_visit_counts_twice(app, signed_in):
    nurse = signed_in("nurse")
    encounter_id = make_encounter(app, make_patient(app))
    response = nurse.htmx_post(
        f"/chart/encounters/{encounter_id}/problems",
        {"encounter-problem-icd10_code": "J06.9", "encounter-problem-status": "active"},
    )
    assert response.status_code == 200
    assert uses(app) == {"J06.9": 2}  # on the problem list, and addressed at this visit


# --- a race (PostgreSQL; tests/charting/race_helpers.py) ----------------------------------


@pytest.mark.postgres_only
def test_two_first_uses_of_a_code_at_once_both_count(app, signed_in, monkeypatch):
    """Two clinicians record a code the clinic never used at the same moment: the colleague's
    count row is written between this request's check-free upsert being reached and run. Both
    count; neither request fails on the new row's key."""
    nurse, colleague = signed_in("nurse"), signed_in("prescriber")
    first, second = make_patient(app, given="A"), make_patient(app, given="B")
    race = interleave(
        monkeypatch, lists, "_count_uses", lambda: add_problem(colleague, second, "R42")
    )
    add_problem(nurse, first, "R42")
    race.finish()
    assert uses(app) == {"R42": 2}


def test_a_running_portal_starts_building_the_index_at_its_first_request(
    app, signed_in, monkeypatch
):
    """So that no clinician's first search waits seconds for the index (the issue's 1.2 s
    search)."""
    started = []
    monkeypatch.setattr(icd10, "warm_up", lambda: started.append(True))
    nurse = signed_in("nurse")
    app.config["ICD10_WARM_UP"] = False
    nurse.get("/")
    assert started == []
    app.config["ICD10_WARM_UP"] = True
    nurse.get("/")
    assert started

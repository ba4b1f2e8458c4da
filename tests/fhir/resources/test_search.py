"""Searching the clinical resource types (the service level; the HTTP layer is the API's):
each parameter, date prefixes, malformed values, ``_id``, counts, and keyset pages that
stay put while rows are added."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from portal.charting.models import Encounter, Note, Problem, VitalSigns, encounter_problems
from portal.clinic.clock import clinic_zone
from portal.extensions import db
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.spec import Criterion, InvalidSearch
from portal.scheduling.models import Appointment
from portal.timeutil import utcnow
from tests.fhir.resources.records import seed_records


@pytest.fixture
def records(app):
    return seed_records(app)


def crit(name: str, *values: str, modifier: str | None = None) -> Criterion:
    return Criterion(name, modifier, list(values))


def everything(type_name: str, *criteria: Criterion, count: int = 2) -> list[dict]:
    """Every match, page by page (small pages: the paging is part of what is tested)."""
    spec = RESOURCE_TYPES[type_name]
    found, after = [], None
    while True:
        page = spec.search(list(criteria), after, count)
        assert len(page.resources) <= count
        found += page.resources
        if page.next_after is None:
            return found
        assert page.resources, "a page with a next link is never empty"
        after = page.next_after


def ids(resources) -> set[str]:
    return {resource["id"] for resource in resources}


def assert_count_agrees(type_name: str, *criteria: Criterion) -> list[dict]:
    found = everything(type_name, *criteria)
    assert RESOURCE_TYPES[type_name].count(list(criteria)) == len(found)
    assert len(ids(found)) == len(found), "no resource twice"
    return found


def test_search_by_patient_and_subject_is_the_patients_record(app, records):
    with app.app_context():
        for name in (
            "Encounter",
            "Condition",
            "Observation",
            "DocumentReference",
            "MedicationRequest",
        ):
            for param in ("patient", "subject"):
                found = assert_count_agrees(name, crit(param, f"Patient/{records.full}"))
                assert ids(found) == ids(RESOURCE_TYPES[name].for_patient(records.full))
                assert found
        for name in ("AllergyIntolerance", "Immunization", "Appointment"):
            found = assert_count_agrees(name, crit("patient", str(records.full), "Patient/99999"))
            assert ids(found) == ids(RESOURCE_TYPES[name].for_patient(records.full))
        # Everyone's: no criteria at all.
        everyone = assert_count_agrees("Observation")
        assert {r["subject"]["reference"] for r in everyone} >= {
            f"Patient/{patient}" for patient in records.patients
        }


def test_a_reference_to_another_type_or_a_malformed_value_is_refused(app, records):
    with app.app_context():
        spec = RESOURCE_TYPES["Condition"]
        for criterion in (
            crit("patient", "Practitioner/1"),
            crit("onset-date", "last week"),
            crit("code", "a|b|c"),
            crit("recorded-date", "2024", modifier="exact"),
            crit("flavour", "sweet"),
        ):
            with pytest.raises(InvalidSearch) as refused:
                spec.search([criterion], None, 10)
            assert refused.value.parameter == criterion.name
            with pytest.raises(InvalidSearch):
                spec.count([criterion])
        for forged in ("not-a-position", "p99999999999", "p3.4", "d5", "x1", "p-1", ""):
            if forged:
                with pytest.raises(InvalidSearch):
                    spec.search([], forged, 10)
        with pytest.raises(InvalidSearch):
            RESOURCE_TYPES["Observation"].search([], "v3", 10)
        # An _id of another source's form does not hide a malformed criterion beside it.
        with pytest.raises(InvalidSearch):
            spec.search([crit("_id", "dx-1-2"), crit("onset-date", "soon")], None, 10)
        with pytest.raises(InvalidSearch):
            RESOURCE_TYPES["Observation"].search([crit("date", "ap2024")], None, 10)


def test_observation_code_category_date_and_status(app, records):
    with app.app_context():
        patient = crit("patient", str(records.full))
        heart = assert_count_agrees("Observation", patient, crit("code", "http://loinc.org|8867-4"))
        assert heart and all(r["code"]["coding"][0]["code"] == "8867-4" for r in heart)
        # Either SpO2 code finds the same Observations; a code of another system nothing.
        first = ids(everything("Observation", crit("code", "2708-6")))
        assert first and first == ids(
            everything("Observation", crit("code", "http://loinc.org|59408-5"))
        )
        assert not everything("Observation", crit("code", "http://snomed.info/sct|8867-4"))
        both = assert_count_agrees("Observation", patient, crit("code", "8867-4", "85354-9"))
        assert {r["code"]["coding"][0]["code"] for r in both} == {"8867-4", "85354-9"}
        not_heart = assert_count_agrees(
            "Observation", patient, crit("code", "8867-4", modifier="not")
        )
        assert not ids(heart) & ids(not_heart)
        assert len(heart) + len(not_heart) == len(
            list(RESOURCE_TYPES["Observation"].for_patient(records.full))
        )
        vitals = crit(
            "category", "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
        )
        assert len(assert_count_agrees("Observation", patient, vitals)) == len(heart) + len(
            not_heart
        )
        assert not everything("Observation", crit("category", "laboratory"))
        in_error = assert_count_agrees("Observation", patient, crit("status", "entered-in-error"))
        assert [r["id"].split("-")[1] for r in in_error] == ["hr"]
        assert all(
            r["status"] == "final"
            for r in everything("Observation", patient, crit("status", "final"))
        )

        taken = db.session.scalars(
            select(VitalSigns.taken_at).where(VitalSigns.patient_id == records.full)
        ).all()
        newest = max(taken)
        day = newest.astimezone(clinic_zone()).date().isoformat()
        on_day = everything("Observation", patient, crit("date", day))
        assert on_day
        for found in on_day:
            taken_at = datetime.fromisoformat(found["effectiveDateTime"].replace("Z", "+00:00"))
            assert taken_at.astimezone(clinic_zone()).date().isoformat() == day
        after = everything("Observation", patient, crit("date", f"gt{day}"))
        assert not after
        since = ids(everything("Observation", patient, crit("date", f"ge{day}")))
        assert since == ids(on_day)
        before = ids(everything("Observation", patient, crit("date", f"lt{day}")))
        assert not before & since
        assert before | since == ids(RESOURCE_TYPES["Observation"].for_patient(records.full))
        assert ids(everything("Observation", patient, crit("date", f"ne{day}"))) == before
        assert ids(everything("Observation", patient, crit("date", f"le{day}"))) == before | since
        # An instant with its offset: the second the newest set was taken.
        stamp = newest.replace(microsecond=0).isoformat()
        assert ids(everything("Observation", patient, crit("date", stamp))) == ids(
            r for r in on_day if r["effectiveDateTime"][:19] == stamp[:19]
        )


def test_observation_ids_name_one_measurement(app, records):
    with app.app_context():
        spec = RESOURCE_TYPES["Observation"]
        some = next(iter(spec.for_patient(records.full)))
        row_id, _part = some["id"].split("-")
        assert spec.read(some["id"]) == some
        assert spec.read(f"{row_id}-nope") is None
        assert spec.read(f"{row_id}") is None
        assert spec.read("0012-hr") is None
        assert spec.read("99999-hr") is None
        found = assert_count_agrees("Observation", crit("_id", some["id"]))
        assert [r["id"] for r in found] == [some["id"]]
        found = assert_count_agrees("Observation", crit("_id", some["id"], "abc", f"{row_id}-zz"))
        assert [r["id"] for r in found] == [some["id"]]


def test_condition_categories_codes_and_dates(app, records):
    with app.app_context():
        patient = crit("patient", str(records.full))
        problems = assert_count_agrees("Condition", patient, crit("category", "problem-list-item"))
        diagnoses = assert_count_agrees(
            "Condition",
            patient,
            crit(
                "category",
                "http://terminology.hl7.org/CodeSystem/condition-category|encounter-diagnosis",
            ),
        )
        assert problems and diagnoses
        assert all(r["id"].isdigit() for r in problems)
        assert all(r["id"].startswith("dx-") and r["encounter"] for r in diagnoses)
        assert ids(
            everything("Condition", patient, crit("category", "problem-list-item", modifier="not"))
        ) == ids(diagnoses)
        bronchitis = assert_count_agrees(
            "Condition", patient, crit("code", "http://hl7.org/fhir/sid/icd-10-cm|J20.9")
        )
        assert len(bronchitis) == 2  # the problem and the visit that addressed it
        assert {r["clinicalStatus"]["coding"][0]["code"] for r in bronchitis} == {"resolved"}
        assert not everything("Condition", crit("code", "http://snomed.info/sct|J20.9"))
        resolved = assert_count_agrees("Condition", patient, crit("clinical-status", "resolved"))
        assert ids(resolved) == ids(bronchitis)
        leap = assert_count_agrees("Condition", patient, crit("onset-date", "2024-02-29"))
        assert ids(leap) == ids(bronchitis)
        assert ids(everything("Condition", patient, crit("onset-date", "2024-02"))) >= ids(
            bronchitis
        )
        assert not ids(everything("Condition", patient, crit("onset-date", "gt2024-02-29"))) & ids(
            bronchitis
        )
        visit = (
            bronchitis[1]["encounter"]["reference"]
            if "encounter" in bronchitis[1]
            else bronchitis[0]["encounter"]["reference"]
        )
        by_visit = assert_count_agrees("Condition", crit("encounter", visit))
        assert ids(by_visit) <= ids(diagnoses) and by_visit
        recorded = assert_count_agrees("Condition", patient, crit("recorded-date", "ge2000"))
        assert ids(recorded) == ids(problems) | ids(diagnoses)


def test_allergies_no_known_allergies_is_never_not_asked(app, records):
    with app.app_context():
        spec = RESOURCE_TYPES["AllergyIntolerance"]
        nka = list(spec.for_patient(records.nka))
        assert len(nka) == 1
        assert nka[0]["id"] == f"nka-{records.nka}"
        assert nka[0]["code"]["coding"][0] == {
            "system": "http://snomed.info/sct",
            "code": "716186003",
            "display": "No known allergy (situation)",
        }
        assert spec.read(f"nka-{records.nka}") == nka[0]
        # Never asked: nothing at all, and no "no known allergy" to read.
        assert list(spec.for_patient(records.not_asked)) == []
        assert spec.read(f"nka-{records.not_asked}") is None
        snomed = assert_count_agrees(
            "AllergyIntolerance", crit("code", "http://snomed.info/sct|716186003")
        )
        assert records.not_asked not in {
            int(r["patient"]["reference"].split("/")[1]) for r in snomed
        }
        assert f"nka-{records.nka}" in ids(snomed)


def test_allergy_statuses_categories_and_codes(app, records):
    with app.app_context():
        patient = crit("patient", str(records.full))
        every = list(RESOURCE_TYPES["AllergyIntolerance"].for_patient(records.full))
        in_error = [
            r for r in every if r["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
        ]
        assert len(in_error) == 1 and "clinicalStatus" not in in_error[0]
        active = assert_count_agrees(
            "AllergyIntolerance", patient, crit("clinical-status", "active")
        )
        assert not ids(active) & ids(in_error)
        assert ids(
            assert_count_agrees(
                "AllergyIntolerance", patient, crit("verification-status", "entered-in-error")
            )
        ) == ids(in_error)
        inactive = assert_count_agrees(
            "AllergyIntolerance", patient, crit("clinical-status", "inactive")
        )
        assert [r["code"]["text"] for r in inactive] == ["Latex"]
        food = assert_count_agrees("AllergyIntolerance", patient, crit("category", "food"))
        assert [r["code"]["text"] for r in food] == ["Shellfish"]
        medication = assert_count_agrees(
            "AllergyIntolerance", patient, crit("category", "medication")
        )
        assert "Penicillins" in {r["code"]["text"] for r in medication}
        atc = assert_count_agrees(
            "AllergyIntolerance", crit("code", "http://www.whocc.no/atc|J01C")
        )
        assert [r["code"]["text"] for r in atc] == ["Penicillins"]
        high = assert_count_agrees("AllergyIntolerance", patient, crit("criticality", "high"))
        assert all(r["criticality"] == "high" for r in high) and high
        assert assert_count_agrees("AllergyIntolerance", patient, crit("date", "ge2000"))


def test_immunization_status_code_and_date(app, records):
    with app.app_context():
        patient = crit("patient", str(records.full))
        for status, expected in (("not-done", "208"), ("entered-in-error", "03")):
            found = assert_count_agrees("Immunization", patient, crit("status", status))
            assert [r["vaccineCode"]["coding"][0]["code"] for r in found] == [expected]
        tdap = assert_count_agrees(
            "Immunization", crit("vaccine-code", "http://hl7.org/fhir/sid/cvx|115")
        )
        assert len(tdap) == 1 and tdap[0]["lotNumber"] == "LOT-42"
        assert tdap[0]["primarySource"] is True
        day = tdap[0]["occurrenceDateTime"]
        assert tdap[0]["id"] in ids(everything("Immunization", patient, crit("date", day)))
        assert tdap[0]["id"] not in ids(
            everything("Immunization", patient, crit("date", f"gt{day}"))
        )
        assert tdap[0]["id"] in ids(everything("Immunization", patient, crit("date", f"le{day}")))


def test_encounter_status_follows_the_visit(app, records):
    with app.app_context():
        appointments = db.session.execute(
            select(Appointment.id, Appointment.status, Appointment.patient_id)
            .order_by(Appointment.id)
            .limit(8)
        ).all()
        made = {}
        for appointment_id, status, patient_id in appointments:
            encounter = Encounter(
                patient_id=patient_id,
                provider_id=records.drlee,
                appointment_id=appointment_id,
                occurred_at=utcnow(),
            )
            db.session.add(encounter)
            db.session.flush()
            made[status] = str(encounter.id)
        db.session.commit()
        spec = RESOURCE_TYPES["Encounter"]
        expected = {
            "scheduled": "in-progress",
            "confirmed": "in-progress",
            "arrived": "arrived",
            "roomed": "triaged",
            "with_provider": "in-progress",
            "completed": "finished",
            "cancelled": "cancelled",
            "no_show": "cancelled",
        }
        for status, fhir_id in made.items():
            assert spec.read(fhir_id)["status"] == expected[status], status
            found = everything("Encounter", crit("status", expected[status]), crit("_id", fhir_id))
            assert ids(found) == {fhir_id}
        # A signed note finishes an ad hoc visit; a draft does not.
        drafts = db.session.scalars(select(Note.encounter_id).where(Note.signed_at.is_(None))).all()
        assert drafts
        assert spec.read(str(drafts[0]))["status"] == "in-progress"
        finished = assert_count_agrees("Encounter", crit("status", "finished"))
        assert str(drafts[0]) not in ids(finished)
        virtual = assert_count_agrees(
            "Encounter", crit("class", "http://terminology.hl7.org/CodeSystem/v3-ActCode|VR")
        )
        assert len(virtual) == 2
        assert assert_count_agrees(
            "Encounter", crit("practitioner", f"Practitioner/{records.drlee}")
        )
        now = utcnow()
        recent = assert_count_agrees(
            "Encounter", crit("date", f"ge{(now - timedelta(days=4)).date().isoformat()}")
        )
        assert set(made.values()) <= ids(recent)


def test_documents_are_signed_notes_and_addenda_only(app, records):
    with app.app_context():
        spec = RESOURCE_TYPES["DocumentReference"]
        draft = db.session.scalar(select(Note.id).where(Note.signed_at.is_(None)))
        assert spec.read(str(draft)) is None
        every = assert_count_agrees("DocumentReference")
        assert str(draft) not in ids(every)
        signed = db.session.scalar(
            select(Note.id).where(Note.signed_at.is_not(None)).order_by(Note.id)
        )
        assert str(signed) in ids(every)
        mine = list(spec.for_patient(records.full))
        addenda = [r for r in mine if r["id"].startswith("add-")]
        assert len(addenda) == 2
        note_id = addenda[0]["relatesTo"][0]["target"]["reference"]
        amended = spec.read(note_id.split("/")[1])
        assert amended["docStatus"] == "amended"
        nursing = assert_count_agrees(
            "DocumentReference",
            crit("patient", str(records.full)),
            crit("type", "http://loinc.org|34746-8"),
        )
        assert len(nursing) == 1
        assert nursing[0]["author"][0]["display"] == "Sam Okafor"
        assert assert_count_agrees("DocumentReference", crit("status", "current")) == every
        assert not everything("DocumentReference", crit("status", "superseded"))
        assert assert_count_agrees("DocumentReference", crit("category", "clinical-note")) == every


def test_medication_requests_plan_and_order(app, records):
    with app.app_context():
        patient = crit("patient", str(records.full))
        plans = assert_count_agrees("MedicationRequest", patient, crit("intent", "plan"))
        orders = assert_count_agrees("MedicationRequest", patient, crit("intent", "order"))
        assert all(r["intent"] == "plan" and r["id"].isdigit() for r in plans)
        assert len(orders) == 6 and all(r["id"].startswith("rx-") for r in orders)
        for status in ("active", "stopped", "completed", "entered-in-error", "draft", "cancelled"):
            found = assert_count_agrees("MedicationRequest", patient, crit("status", status))
            assert found and all(r["status"] == status for r in found), status
        stopped = everything("MedicationRequest", patient, crit("status", "stopped"))
        assert stopped[0]["statusReason"]["text"] == "Stomach upset"
        amoxicillin = assert_count_agrees(
            "MedicationRequest", crit("code", "http://www.nlm.nih.gov/research/umls/rxnorm|308191")
        )
        assert {r["intent"] for r in amoxicillin} == {"plan", "order"}
        assert assert_count_agrees("MedicationRequest", patient, crit("authoredon", "ge2000"))
        reported = [r for r in plans if r["reportedBoolean"]]
        assert reported and len(reported) < len(plans)


def test_appointments_by_status_date_and_participant(app, records):
    with app.app_context():
        every = assert_count_agrees("Appointment")
        assert every
        for status in ("booked", "arrived", "checked-in", "fulfilled", "cancelled", "noshow"):
            found = assert_count_agrees("Appointment", crit("status", status))
            assert found and all(r["status"] == status for r in found)
        first = every[0]
        day = first["start"][:10]
        assert first["id"] in ids(everything("Appointment", crit("date", f"ge{day}T00:00:00Z")))
        location = [
            p["actor"]["reference"]
            for p in first["participant"]
            if p["actor"]["reference"].startswith("Location/")
        ]
        assert ids(assert_count_agrees("Appointment", crit("location", location[0]))) == ids(every)
        assert ids(
            assert_count_agrees("Appointment", crit("practitioner", str(records.drlee)))
        ) == ids(every)


def test_pages_stay_put_while_rows_are_added(app, records):
    """Keyset pages: rows added between two pages (with smaller dates, for other patients,
    or later in the order) never make a page repeat or skip what was there."""
    with app.app_context():
        for type_name, add in (
            ("Observation", _add_vitals),
            ("Condition", _add_problem_and_diagnosis),
        ):
            spec = RESOURCE_TYPES[type_name]
            before = ids(spec.stream(None, None))
            seen, after, pages = [], None, 0
            while True:
                page = spec.search([], after, 3)
                seen += [r["id"] for r in page.resources]
                add(records)
                pages += 1
                if page.next_after is None:
                    break
                after = page.next_after
            assert len(seen) == len(set(seen)), "no resource twice"
            assert before <= set(seen), "nothing that was there skipped"
            assert pages > 3


def _add_vitals(records) -> None:
    db.session.add(
        VitalSigns(
            patient_id=records.patients[0],
            taken_at=utcnow() - timedelta(days=900),
            heart_rate_per_min=70,
            systolic_mmhg=120,
            diastolic_mmhg=80,
        )
    )
    db.session.commit()


def _add_problem_and_diagnosis(records) -> None:
    problem = Problem(patient_id=records.patients[0], icd10_code="I10", description="Hypertension")
    db.session.add(problem)
    db.session.flush()
    encounter = db.session.scalar(select(Encounter.id).order_by(Encounter.id).limit(1))
    db.session.execute(
        encounter_problems.insert(), [{"encounter_id": encounter, "problem_id": problem.id}]
    )
    db.session.commit()


def test_a_page_can_end_inside_a_set_of_vital_signs(app, records):
    with app.app_context():
        spec = RESOURCE_TYPES["Observation"]
        whole = [r["id"] for r in spec.stream(None, None)]
        for size in (1, 2, 5, 7):
            assert [r["id"] for r in everything("Observation", count=size)] == whole


def test_export_since_a_time_and_for_some_patients(app, records):
    with app.app_context():
        spec = RESOURCE_TYPES["Observation"]
        every = ids(spec.stream(None, None))
        later = utcnow()
        assert not ids(spec.stream(later, None))
        _add_vitals(records)
        new = ids(spec.stream(later, None))
        assert new and not new & every
        assert new == ids(spec.stream(later, [records.patients[0]]))
        assert not ids(spec.stream(later, [records.full]))
        # Many patients named: read a few hundred at a time, all found.
        assert ids(spec.stream(None, list(range(1, 1200)))) == every | new


def test_a_page_of_none_is_empty_and_still_checks_the_criteria(app, records):
    with app.app_context():
        spec = RESOURCE_TYPES["Encounter"]
        page = spec.search([], None, 0)
        assert page.resources == [] and page.next_after is None
        with pytest.raises(InvalidSearch):
            spec.search([crit("date", "soon")], None, 0)
        # A page exactly as long as what matches has no next link.
        total = spec.count([])
        assert spec.search([], None, total).next_after is None
        assert spec.search([], None, total - 1).next_after is not None


def test_export_since_sees_a_visit_whose_note_was_signed_since(app, records):
    with app.app_context():
        spec = RESOURCE_TYPES["Encounter"]
        later = utcnow()
        assert not ids(spec.stream(later, None))
        draft = db.session.scalars(select(Note).where(Note.signed_at.is_(None))).first()
        draft.signed_at = utcnow()
        draft.signed_by_id = draft.author_id
        draft.signed_text_sha256 = "0" * 64
        db.session.commit()
        assert ids(spec.stream(later, None)) == {str(draft.encounter_id)}
        assert spec.read(str(draft.encounter_id))["status"] == "finished"
        documents = ids(RESOURCE_TYPES["DocumentReference"].stream(later, None))
        assert documents == {str(draft.id)}


# The types of this part of the API (the registry also holds the API's own: Patient...).
CLINICAL_TYPES = (
    "AllergyIntolerance",
    "Appointment",
    "Condition",
    "DocumentReference",
    "Encounter",
    "Immunization",
    "MedicationRequest",
    "Observation",
)
MALFORMED = {
    "date": "next tuesday",
    "token": "a|b|c",
    "reference": "Observation/1",
}


@pytest.mark.parametrize("type_name", CLINICAL_TYPES)
def test_every_parameter_refuses_a_malformed_value_by_name(app, records, type_name):
    with app.app_context():
        spec = RESOURCE_TYPES[type_name]
        for name, kind in spec.search_params.items():
            criterion = crit(name, MALFORMED[kind])
            with pytest.raises(InvalidSearch) as refused:
                spec.search([criterion], None, 5)
            assert refused.value.parameter == name
            with pytest.raises(InvalidSearch):
                spec.count([criterion])


@pytest.mark.parametrize("type_name", CLINICAL_TYPES)
def test_every_date_parameter_splits_the_records_at_a_day(app, records, type_name):
    """lt and ge of the same day share nothing and together are every dated resource; eq
    is ge that day and lt the next."""
    with app.app_context():
        spec = RESOURCE_TYPES[type_name]
        today = utcnow().astimezone(clinic_zone()).date()
        for name, kind in spec.search_params.items():
            if kind != "date":
                continue
            dated = ids(assert_count_agrees(type_name, crit(name, "ge1900")))
            assert dated, name
            for day in (today - timedelta(days=3), today, today - timedelta(days=400)):
                before = ids(everything(type_name, crit(name, f"lt{day}"), count=50))
                since = ids(everything(type_name, crit(name, f"ge{day}"), count=50))
                assert not before & since and before | since == dated, (name, day)
                on_day = ids(everything(type_name, crit(name, str(day)), count=50))
                following = day + timedelta(days=1)
                next_day = ids(everything(type_name, crit(name, f"ge{following}"), count=50))
                assert on_day == since - next_day, (name, day)
                not_on_day = ids(everything(type_name, crit(name, f"ne{day}"), count=50))
                assert not_on_day == dated - on_day

"""DoseSpot's patient rules, checked on our side, and patient sync against the sandbox."""

from __future__ import annotations

import pytest

from portal.integrations.dosespot.connector import PatientNotReady
from portal.integrations.dosespot.patients import (
    patient_payload,
    patient_problems,
    ten_digit_phone,
)
from tests.integrations.dosespot.helpers import PRESCRIBER, TODAY, connector, snapshot


def test_a_complete_adult_has_no_problems():
    assert patient_problems(snapshot(), TODAY) == []


def test_a_child_needs_height_and_weight():
    child = snapshot(birth_date="2010-01-01")
    assert patient_problems(child, TODAY) == ["Record height and weight (required under 19 years)"]
    assert patient_problems(child | {"height_cm": 150, "weight_kg": 41.5}, TODAY) == []


def test_the_day_of_the_19th_birthday_needs_no_measurements():
    assert patient_problems(snapshot(birth_date="2006-06-01"), TODAY) == []
    assert patient_problems(snapshot(birth_date="2006-06-02"), TODAY) != []


def test_a_nine_digit_phone_and_a_missing_address_say_what_to_add():
    problems = patient_problems(
        snapshot(phone_mobile="413555019", address_line1="", city=None), TODAY
    )
    assert problems == [
        "Add a home address to prescribe electronically (street, city, state and ZIP code)",
        "Add a 10-digit phone number",
    ]
    assert not any("413555019" in problem for problem in problems)


def test_phones_lose_the_country_code_and_punctuation():
    assert ten_digit_phone("+1 (413) 555-0199") == "4135550199"
    assert ten_digit_phone("+44 20 7946 0958") is None
    payload = patient_payload(snapshot(phone_mobile=None, phone_home="413-555-0100"))
    assert (payload["PrimaryPhone"], payload["PrimaryPhoneType"]) == ("4135550100", "Home")


@pytest.mark.parametrize(
    ("sex", "gender"),
    [("female", "Female"), ("male", "Male"), ("unknown", "Unknown"), ("", "Unknown")],
)
def test_sex_at_birth_maps_to_dosespots_gender(sex, gender):
    assert patient_payload(snapshot(sex_at_birth=sex))["Gender"] == gender


def test_the_payload_carries_the_mrn_and_metric_measurements():
    payload = patient_payload(snapshot(height_cm=150, weight_kg=41.5, postal_code="01101-1234"))
    assert payload["NonDoseSpotMedicalRecordNumber"] == "10000017"
    assert payload["ZipCode"] == "011011234"
    assert (payload["Height"], payload["HeightMetric"]) == (150.0, 2)
    assert (payload["Weight"], payload["WeightMetric"]) == (41.5, 2)


def test_an_incomplete_patient_is_refused_before_any_call(sandbox):
    with pytest.raises(PatientNotReady) as refused:
        connector(sandbox).sync_patient(PRESCRIBER, snapshot(phone_mobile="413555019"))
    assert refused.value.problems == ["Add a 10-digit phone number"]
    assert sandbox.tokens_granted() == 0 and sandbox.patients() == []


def test_create_then_update_keeps_one_dosespot_patient(sandbox):
    ds = connector(sandbox)
    created = ds.deliver(
        "sync_patient",
        {"clinician_id": PRESCRIBER, "patient": snapshot(), "dosespot_patient_id": None},
        "dosespot:sync_patient:1",
    )
    assert created["created"] is True
    patient_id = created["dosespot_patient_id"]
    moved = snapshot(address_line1="77 Birch Road")
    assert ds.sync_patient(PRESCRIBER, moved, patient_id) == patient_id
    # A retried create whose first answer was lost finds the patient by name, birth and MRN.
    assert ds.sync_patient(PRESCRIBER, moved) == patient_id
    [stored] = sandbox.patients()
    assert stored["PatientId"] == patient_id and stored["Address1"] == "77 Birch Road"
    assert stored["PrimaryPhone"] == "4135550199" and stored["Gender"] == "Female"

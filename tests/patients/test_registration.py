"""Registering a patient: what is stored, and every kind of bad input refused with a message."""

from __future__ import annotations

import re
from datetime import date, timedelta

from tests.patients.helpers import VALID, patient, patients, register, register_ok
from tests.support.audit import audit_events


def field_error(html: str, field_id: str) -> str:
    """The message shown next to a field (the macro renders it as #<id>-error)."""
    match = re.search(rf'id="{field_id}-error">(.*?)</div>', html, re.S)
    assert match, f"no error shown next to {field_id}"
    return match.group(1)


def input_value(html: str, field_id: str) -> str | None:
    tag = re.search(rf'<input[^>]*\bid="{field_id}"[^>]*>', html)
    assert tag, f"no input #{field_id}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return value.group(1) if value else None


def test_form_marks_required_fields_and_has_sections(desk):
    html = desk.get("/patients/new").get_data(as_text=True)
    for section in ("Identity", "Contact", "Address", "Emergency contact", "Insurance"):
        assert f">{section}</legend>" in html
    for label in (
        "Legal given name",
        "Legal family name",
        "Date of birth",
        "Sex assigned at birth",
    ):
        assert re.search(rf"{label}\s*<span class=\"required-mark\"", html), label
    assert not re.search(r"Preferred name\s*<span class=\"required-mark\"", html)


def test_registration_stores_everything_with_keys_phones_and_mrn(app, desk):
    patient_id = register_ok(desk, email="Ana.Munoz@EXAMPLE.org")
    stored = patient(app, patient_id)
    assert (stored.given_name, stored.family_name, stored.preferred_name) == (
        "Ana",
        "Muñoz",
        "Annie",
    )
    assert (stored.given_key, stored.family_key) == ("ana", "munoz")
    assert stored.birth_date == date(1980, 2, 3)
    assert stored.phone_mobile == "+14135550142"
    assert stored.emergency_contact_phone == "+14135550199"
    assert stored.phone_home is None and stored.phone_work is None
    assert stored.email == "Ana.Munoz@example.org"  # domain normalised by email-validator
    assert stored.status == "active"
    assert re.fullmatch(r"\d{9}", stored.mrn)
    assert (stored.insurance_payer, stored.insurance_member_id, stored.insurance_group) == (
        "Blue Shield",
        "XZ123456",
        "G-77",
    )
    created = audit_events(app, "patient.create")
    assert [(e.patient_id, e.category) for e in created] == [(patient_id, "demographics")]


def test_registered_patient_page_follows(desk):
    patient_id = register_ok(desk)
    page = desk.get(f"/patients/{patient_id}")
    assert page.status_code == 200
    assert "Patient registered." in page.get_data(as_text=True)


def assert_refused(app, response, field_id: str, expected: str, status: int = 422) -> str:
    """Refused with the message beside the field, nothing saved, the rest of the input kept."""
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert expected in field_error(html, field_id)
    assert patients(app) == []
    for other in ("family_name", "city", "insurance_member_id"):
        if other != field_id:
            assert input_value(html, other) == VALID[other]
    return html


def test_future_birth_date_is_refused(app, desk):
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    response = register(desk, birth_date=tomorrow)
    html = assert_refused(app, response, "birth_date", "cannot be in the future")
    assert input_value(html, "birth_date") == tomorrow


def test_birth_date_before_1900_is_refused(app, desk):
    response = register(desk, birth_date="1899-12-31")
    assert_refused(app, response, "birth_date", "before 1 Jan 1900")


def test_1900_01_01_is_accepted(desk):
    register_ok(desk, birth_date="1900-01-01")


def test_unparseable_birth_date_is_refused(app, desk):
    response = register(desk, birth_date="31/31/1980")
    html = assert_refused(app, response, "birth_date", "Not a valid date")
    assert input_value(html, "birth_date") == "31/31/1980"


def test_bad_phone_is_refused_and_kept(app, desk):
    response = register(desk, phone_home="555-12")
    html = assert_refused(app, response, "phone_home", "Not a valid phone number")
    assert input_value(html, "phone_home") == "555-12"


def test_bad_emergency_phone_is_refused(app, desk):
    response = register(desk, emergency_contact_phone="call me")
    assert_refused(app, response, "emergency_contact_phone", "Not a valid phone number")


def test_phones_in_any_format_are_stored_in_e164(app, desk):
    patient_id = register_ok(
        desk, phone_mobile="413.555.0142", phone_home="+1 (413) 555-0143", phone_work="4135550144"
    )
    stored = patient(app, patient_id)
    assert (stored.phone_mobile, stored.phone_home, stored.phone_work) == (
        "+14135550142",
        "+14135550143",
        "+14135550144",
    )


def test_foreign_phone_with_country_code_is_accepted(app, desk):
    patient_id = register_ok(desk, phone_mobile="+44 20 7946 0958")
    assert patient(app, patient_id).phone_mobile == "+442079460958"


def test_bad_email_is_refused(app, desk):
    response = register(desk, email="ana@@example")
    html = assert_refused(app, response, "email", "Not a valid email address")
    assert input_value(html, "email") == "ana@@example"


def test_missing_required_fields_are_each_named(app, desk):
    response = register(desk, given_name="", family_name=" ", birth_date="", sex_at_birth="")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for field_id in ("given_name", "family_name", "birth_date", "sex_at_birth"):
        assert "Required." in field_error(html, field_id)
    assert input_value(html, "city") == "Springfield"
    assert patients(app) == []


def test_unknown_sex_value_is_refused(app, desk):
    response = register(desk, sex_at_birth="robot")
    assert response.status_code == 422
    assert "Not a valid choice" in field_error(response.get_data(as_text=True), "sex_at_birth")
    assert patients(app) == []


def test_bad_country_code_is_refused(app, desk):
    response = register(desk, country="U1")
    assert_refused(app, response, "country", "two-letter country code")


def test_too_long_text_is_refused_and_kept_for_editing(app, desk):
    long_name = "x" * 101
    response = register(desk, preferred_name=long_name)
    html = assert_refused(app, response, "preferred_name", "At most 100 characters (this has 101)")
    assert input_value(html, "preferred_name") == long_name


def test_every_text_field_has_a_maximum(app, desk):
    for field_id in (
        "given_name",
        "gender_identity",
        "pronouns",
        "address_line1",
        "address_line2",
        "city",
        "state",
        "postal_code",
        "preferred_language",
        "emergency_contact_name",
        "emergency_contact_relationship",
        "insurance_payer",
        "insurance_member_id",
        "insurance_group",
        "phone_work",
    ):
        response = register(desk, **{field_id: "y" * 300})
        assert response.status_code == 422, field_id
        assert "At most" in field_error(response.get_data(as_text=True), field_id)
    assert patients(app) == []


def test_one_megabyte_field_is_refused_with_a_message_beside_it(app, desk):
    response = register(desk, address_line2="A" * (1024 * 1024))
    html = assert_refused(app, response, "address_line2", "At most 200 characters")
    assert "too long to keep" in field_error(html, "address_line2")
    assert len(html) < 200_000  # the megabyte is not echoed back into the page
    assert input_value(html, "given_name") == "Ana"
    assert input_value(html, "phone_mobile") == VALID["phone_mobile"]


def test_one_megabyte_field_sent_as_multipart_is_refused_the_same_way(app, desk):
    data = {**VALID, "csrf_token": desk.csrf, "insurance_group": "Z" * (1024 * 1024)}
    response = desk.post("/patients/new", data=data, content_type="multipart/form-data")
    assert_refused(app, response, "insurance_group", "At most 64 characters")


def test_registration_needs_the_write_permission(app, signed_in):
    admin = signed_in("admin")
    assert admin.get("/patients/new").status_code == 403
    assert register(admin).status_code == 403
    assert patients(app) == []

"""The patient page with its banner, editing demographics, status changes, unknown ids."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from portal.timeutil import age_on
from tests.patients.helpers import patient, register_ok, registration
from tests.support.audit import audit_events


def test_page_shows_banner_then_demographics(app, desk):
    patient_id = register_ok(desk)
    stored = patient(app, patient_id)
    response = desk.get(f"/patients/{patient_id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    banner = html.split('id="patient-banner"', 1)[1].split("</section>", 1)[0]
    assert "Muñoz, Ana" in banner and "“Annie”" in banner
    age = age_on(date(1980, 2, 3), date.today())
    assert f'3 Feb 1980 <span class="fw-normal">({age} y)</span>' in banner
    assert "Female" in banner
    assert stored.mrn in banner
    assert (
        '<div class="banner-allergies" id="banner-allergies">Allergies: not recorded</div>'
        in banner
    )
    assert "badge-status" not in banner
    # Demographics follow the banner.
    rest = html.split('id="patient-banner"', 1)[1]
    for text in ("(413) 555-0142", "Springfield", "Blue Shield", "Luis Muñoz", "she/her"):
        assert text in rest


def test_viewing_writes_an_audit_event(app, signed_in):
    desk = signed_in("front_desk")
    patient_id = register_ok(desk)
    nurse = signed_in("nurse")
    nurse.get(f"/patients/{patient_id}")
    views = audit_events(app, "patient.view")
    assert [(e.username, e.patient_id, e.category) for e in views] == [
        ("nurse", patient_id, "demographics")
    ]


def test_admin_may_read_but_not_edit(app, signed_in):
    patient_id = register_ok(signed_in("front_desk"))
    admin = signed_in("admin")
    html = admin.get(f"/patients/{patient_id}").get_data(as_text=True)
    assert "Edit demographics" not in html and 'id="status-form"' not in html
    assert admin.get(f"/patients/{patient_id}/edit").status_code == 403
    assert (
        admin.post_form(f"/patients/{patient_id}/status", {"status": "inactive"}).status_code == 403
    )
    assert patient(app, patient_id).status == "active"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/patients/999999"),
        ("get", "/patients/999999/edit"),
        ("post", "/patients/999999/edit"),
        ("post", "/patients/999999/status"),
    ],
)
def test_unknown_patient_is_404_on_every_patient_url(desk, method, path):
    if method == "get":
        response = desk.get(path)
    else:
        response = desk.post_form(path, registration(status="inactive"))
    assert response.status_code == 404


def test_unknown_patient_with_invalid_form_is_still_404(desk):
    assert desk.post_form("/patients/999999/edit", {"given_name": ""}).status_code == 404
    response = desk.post_form("/patients/999999/status", {"status": "deceased"})
    assert response.status_code == 404


def test_edit_form_is_prefilled(desk):
    patient_id = register_ok(desk)
    html = desk.get(f"/patients/{patient_id}/edit").get_data(as_text=True)
    assert 'value="Muñoz"' in html
    assert 'value="(413) 555-0142"' in html
    assert 'value="1980-02-03"' in html
    assert '<option selected value="female">' in html or 'value="female" selected' in html


def test_edit_saves_and_audits_changed_field_names_only(app, desk):
    patient_id = register_ok(desk)
    response = desk.post_form(
        f"/patients/{patient_id}/edit",
        registration(family_name="Muñoz-Ortega", city="Holyoke", phone_home="413 555 0150"),
    )
    assert response.status_code == 303
    stored = patient(app, patient_id)
    assert (stored.family_name, stored.family_key) == ("Muñoz-Ortega", "munoz-ortega")
    assert stored.city == "Holyoke" and stored.phone_home == "+14135550150"
    (update,) = audit_events(app, "patient.update")
    assert update.patient_id == patient_id and update.category == "demographics"
    assert update.detail == "changed: city, family_name, phone_home"
    for value in ("Muñoz", "Ortega", "Holyoke", "555"):
        assert value not in update.detail


def test_edit_without_changes_is_audited_as_such(app, desk):
    patient_id = register_ok(desk)
    assert desk.post_form(f"/patients/{patient_id}/edit", registration()).status_code == 303
    (update,) = audit_events(app, "patient.update")
    assert update.detail == "no changes"


def test_edit_validates_like_registration(app, desk):
    patient_id = register_ok(desk)
    response = desk.post_form(
        f"/patients/{patient_id}/edit",
        registration(birth_date="1899-01-01", email="nope", city="Holyoke"),
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "before 1 Jan 1900" in html and "Not a valid email address" in html
    assert 'value="Holyoke"' in html
    stored = patient(app, patient_id)
    assert stored.birth_date == date(1980, 2, 3) and stored.city == "Springfield"
    assert audit_events(app, "patient.update") == []


def status_change(desk, patient_id, **data):
    return desk.post_form(f"/patients/{patient_id}/status", data)


def test_mark_inactive_then_reactivate(app, desk):
    patient_id = register_ok(desk)
    assert status_change(desk, patient_id, status="inactive").status_code == 303
    assert patient(app, patient_id).status == "inactive"
    banner = desk.get(f"/patients/{patient_id}").get_data(as_text=True)
    assert re.search(r'badge-status-inactive">Inactive<', banner)
    assert status_change(desk, patient_id, status="active").status_code == 303
    assert patient(app, patient_id).status == "active"
    details = [e.detail for e in audit_events(app, "patient.status")]
    assert details == ["active -> inactive", "inactive -> active"]


def test_mark_deceased_with_date(app, desk):
    patient_id = register_ok(desk)
    response = status_change(desk, patient_id, status="deceased", deceased_date="2024-05-06")
    assert response.status_code == 303
    stored = patient(app, patient_id)
    assert (stored.status, stored.deceased_date) == ("deceased", date(2024, 5, 6))
    html = desk.get(f"/patients/{patient_id}").get_data(as_text=True)
    assert "Deceased 6 May 2024" in html
    # Reactivating (a mistake corrected) clears the date; the record was never deleted.
    status_change(desk, patient_id, status="active")
    assert patient(app, patient_id).deceased_date is None


@pytest.mark.parametrize(
    ("deceased_date", "message"),
    [
        ("", "Required when marking the patient deceased"),
        ((date.today() + timedelta(days=2)).isoformat(), "cannot be in the future"),
        ("1979-12-31", "cannot be before the date of birth"),
        ("not a date", "Not a valid date"),
    ],
)
def test_bad_date_of_death_is_refused(app, desk, deceased_date, message):
    patient_id = register_ok(desk)
    response = status_change(desk, patient_id, status="deceased", deceased_date=deceased_date)
    assert response.status_code == 422
    error = re.search(r'id="deceased_date-error">(.*?)</div>', response.get_data(as_text=True))
    assert error and message in error.group(1)
    assert patient(app, patient_id).status == "active"
    assert audit_events(app, "patient.status") == []


def test_unknown_status_is_refused(app, desk):
    patient_id = register_ok(desk)
    assert status_change(desk, patient_id, status="deleted").status_code == 422
    assert patient(app, patient_id).status == "active"


def test_edit_returns_to_the_page_it_was_opened_from(desk):
    """From check-in, "Edit demographics" comes back to check-in after saving or cancelling."""
    patient_id = register_ok(desk)
    check_in = "/schedule/appointments/7/check-in"
    html = desk.get(f"/patients/{patient_id}/edit?next={check_in}").get_data(as_text=True)
    assert f'<input type="hidden" name="next" value="{check_in}">' in html
    assert f'href="{check_in}">Cancel</a>' in html
    response = desk.post_form(
        f"/patients/{patient_id}/edit", registration(city="Holyoke", next=check_in)
    )
    assert response.status_code == 303
    assert response.headers["Location"] == check_in


@pytest.mark.parametrize(
    "hostile", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_edit_never_returns_to_another_site(desk, hostile):
    patient_id = register_ok(desk)
    response = desk.post_form(f"/patients/{patient_id}/edit", registration(next=hostile))
    assert response.status_code == 303
    assert response.headers["Location"] == f"/patients/{patient_id}"

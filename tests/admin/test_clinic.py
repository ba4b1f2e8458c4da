"""Clinic settings: details, time zone, locations; every change audited."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.clinic.models import Clinic, Location
from portal.extensions import db
from tests.audit.helpers import events

VALID = {
    "name": "Riverside Family Practice",
    "address": "100 Main Street",
    "phone": "(413) 555-0100",
    "time_zone": "America/New_York",
}


@pytest.fixture
def admin(signed_in):
    return signed_in("admin")


def clinic(app) -> Clinic:
    with app.app_context():
        found = db.session.scalars(select(Clinic)).one()
        db.session.expunge_all()
        db.session.remove()
    return found


def locations(app) -> dict[str, Location]:
    with app.app_context():
        found = {loc.name: loc for loc in db.session.scalars(select(Location))}
        db.session.expunge_all()
        db.session.remove()
    return found


def test_settings_page_shows_the_clinic_and_its_locations(admin):
    page = admin.get("/admin/clinic")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="Riverside Family Practice"' in html
    assert 'value="+1 413-555-0100"' in html  # the stored E.164 number, readable
    assert '<option selected value="America/New_York">' in html
    assert "Main Street" in html and "Westside" in html
    assert '<label class="form-label" for="location-name">' in html


def test_save_clinic_details_normalises_the_phone_and_is_audited(app, admin):
    response = admin.post_form(
        "/admin/clinic",
        {
            **VALID,
            "name": "Riverside Health",
            "phone": "413.555.0199",
            "time_zone": "America/Chicago",
        },
    )
    assert response.status_code == 302
    saved = clinic(app)
    assert (saved.name, saved.phone, saved.time_zone) == (
        "Riverside Health",
        "+14135550199",
        "America/Chicago",
    )
    event = events(app, "clinic.update")[-1]
    assert event.username == "admin" and event.category == "clinic settings"
    assert event.object_type == "clinics" and event.object_id == str(saved.id)
    assert event.detail == "changed: name, phone, time_zone"
    # The next page already shows the new name in the top bar and times in the new zone.
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "Riverside Health</a>" in page


def test_time_zone_change_moves_times_shown_in_the_audit_report(app, admin):
    admin.post_form("/admin/clinic", {**VALID, "time_zone": "Asia/Tokyo"})
    text = admin.get("/admin/audit/").get_data(as_text=True)
    assert "times in Asia/Tokyo" in text


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone", "Not a valid choice"),
        ({"phone": "12"}, "phone", "phone number"),
        ({"phone": "call us"}, "phone", "phone number"),
        ({"name": "   "}, "name", "This field is required"),
    ],
)
def test_bad_clinic_input_is_refused_beside_the_field_and_kept(app, admin, changes, field, message):
    data = {**VALID, "address": "Typed address 9", **changes}
    response = admin.post_form("/admin/clinic", data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    error = re.search(rf'id="{field}-error">(.*?)</div>', html, re.S)
    assert error and message in error.group(1)
    assert "Typed address 9" in html
    if field == "phone":
        assert f'value="{changes["phone"]}"' in html
    assert clinic(app).address == "100 Main Street"
    assert events(app, "clinic.update") == []


def test_add_a_location_is_audited(app, admin):
    response = admin.post_form(
        "/admin/clinic/locations",
        {
            "location-name": "Northgate",
            "location-address": "7 North Rd",
            "location-phone": "413 555 0177",
        },
    )
    assert response.status_code == 302
    added = locations(app)["Northgate"]
    assert (added.address, added.phone, added.is_active) == ("7 North Rd", "+14135550177", True)
    event = events(app, "location.create")[-1]
    assert event.object_type == "locations" and event.object_id == str(added.id)
    assert event.username == "admin" and event.category == "clinic settings"


def test_adding_a_location_with_a_taken_name_keeps_the_input(app, admin):
    response = admin.post_form(
        "/admin/clinic/locations",
        {
            "location-name": "westside",
            "location-address": "Typed",
            "location-phone": "413 555 0177",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Another location already has that name." in html
    assert 'value="westside"' in html and 'value="413 555 0177"' in html
    assert len(locations(app)) == 2
    assert events(app, "location.create") == []


def test_edit_a_location_is_audited(app, admin):
    westside = locations(app)["Westside"]
    form = admin.get(f"/admin/clinic/locations/{westside.id}")
    assert form.status_code == 200
    response = admin.post_form(
        f"/admin/clinic/locations/{westside.id}",
        {"location-name": "West Side", "location-address": "45 Elm Ave", "location-phone": ""},
    )
    assert response.status_code == 302
    edited = locations(app)["West Side"]
    assert edited.address == "45 Elm Ave" and edited.phone is None
    event = events(app, "location.update")[-1]
    assert event.object_id == str(westside.id) and event.detail == "changed: address, name"


def test_edit_a_location_with_a_bad_phone_keeps_the_input(app, admin):
    westside = locations(app)["Westside"]
    response = admin.post_form(
        f"/admin/clinic/locations/{westside.id}",
        {"location-name": "Renamed", "location-address": "", "location-phone": "555"},
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="location-phone-error"' in html
    assert 'value="Renamed"' in html
    assert "Westside" in locations(app)


def test_deactivate_and_reactivate_a_location(app, admin):
    westside = locations(app)["Westside"]
    response = admin.post_form(f"/admin/clinic/locations/{westside.id}/deactivate")
    assert response.status_code == 302
    assert not locations(app)["Westside"].is_active
    assert events(app, "location.deactivate")[-1].object_id == str(westside.id)
    page = admin.get("/admin/clinic").get_data(as_text=True)
    assert 'Reactivate<span class="visually-hidden"> Westside' in page
    admin.post_form(f"/admin/clinic/locations/{westside.id}/activate")
    assert locations(app)["Westside"].is_active
    assert events(app, "location.activate")[-1].object_id == str(westside.id)


def test_the_last_active_location_cannot_be_deactivated(app, admin):
    found = locations(app)
    assert (
        admin.post_form(f"/admin/clinic/locations/{found['Westside'].id}/deactivate").status_code
        == 302
    )
    response = admin.post_form(f"/admin/clinic/locations/{found['Main Street'].id}/deactivate")
    assert response.status_code == 409
    assert "at least one active location" in response.get_data(as_text=True)
    assert locations(app)["Main Street"].is_active


def test_unknown_location_is_404(admin):
    assert admin.get("/admin/clinic/locations/99999").status_code == 404


@pytest.mark.parametrize("role", ["front_desk", "nurse", "prescriber"])
def test_other_roles_get_403_on_clinic_settings(app, signed_in, role):
    browser = signed_in(role)
    westside = locations(app)["Westside"]
    assert browser.get("/admin/clinic").status_code == 403
    assert browser.post_form("/admin/clinic", {**VALID, "name": "Hijacked"}).status_code == 403
    assert browser.post_form("/admin/clinic/locations", {"location-name": "X"}).status_code == 403
    assert browser.get(f"/admin/clinic/locations/{westside.id}").status_code == 403
    assert browser.post_form(f"/admin/clinic/locations/{westside.id}/deactivate").status_code == 403
    assert clinic(app).name == "Riverside Family Practice"
    assert locations(app)["Westside"].is_active

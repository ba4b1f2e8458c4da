"""Helpers for the patient registry tests: a valid registration, reading back what was stored."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.extensions import db
from portal.patients import services
from portal.patients.models import Patient
from tests.support.clients import actor_of

VALID = {
    "given_name": "Ana",
    "family_name": "Muñoz",
    "preferred_name": "Annie",
    "birth_date": "1980-02-03",
    "sex_at_birth": "female",
    "gender_identity": "Woman",
    "pronouns": "she/her",
    "phone_mobile": "(413) 555-0142",
    "phone_home": "",
    "phone_work": "",
    "email": "ana.munoz@example.org",
    "address_line1": "12 Elm Street",
    "address_line2": "Apt 4",
    "city": "Springfield",
    "state": "MA",
    "postal_code": "01101",
    "country": "US",
    "preferred_language": "Spanish",
    "emergency_contact_name": "Luis Muñoz",
    "emergency_contact_relationship": "Brother",
    "emergency_contact_phone": "413-555-0199",
    "insurance_payer": "Blue Shield",
    "insurance_member_id": "XZ123456",
    "insurance_group": "G-77",
}

PATIENT_ID_IN_LOCATION = re.compile(r"/patients/(\d+)$")


def registration(**overrides) -> dict:
    """The valid registration form with some fields changed."""
    data = dict(VALID)
    data.update(overrides)
    return data


def register(client, **overrides):
    """POST the registration form; returns the response (303 to the new page on success)."""
    return client.post_form("/patients/new", registration(**overrides))


def register_ok(client, **overrides) -> int:
    """Register and return the new patient's id (fails the test if it did not work)."""
    response = register(client, **overrides)
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    match = PATIENT_ID_IN_LOCATION.search(response.location)
    assert match, response.location
    return int(match.group(1))


def patients(app) -> list[Patient]:
    with app.app_context():
        rows = list(db.session.scalars(select(Patient).order_by(Patient.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def patient(app, patient_id: int) -> Patient:
    with app.app_context():
        row = db.session.get(Patient, patient_id)
        db.session.expunge(row)
        return row


def add_patient(app, given, family, born, **extra) -> tuple[int, str]:
    """Register through the service (no duplicate prompt); returns (id, MRN)."""
    values = {
        "given_name": given,
        "family_name": family,
        "birth_date": born,
        "sex_at_birth": "female",
    }
    values.update(extra)
    with app.app_context():
        created = services.register_patient(actor_of("frontdesk"), values, confirmed_different=True)
        result = created.id, created.mrn
        db.session.remove()
    return result


def search(browser, query, htmx=True):
    if htmx:
        return browser.htmx_post("/patients/search", {"q": query})
    return browser.post_form("/patients/search", {"q": query})


def result_ids(response) -> list[int]:
    """Patient ids of the results, in order."""
    assert response.status_code == 200
    return [int(i) for i in re.findall(r'href="/patients/(\d+)"', response.get_data(as_text=True))]

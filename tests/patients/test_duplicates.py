"""The duplicate check at registration: possible matches shown, and the explicit override."""

from __future__ import annotations

from tests.patients.helpers import patients, register, register_ok
from tests.support.audit import audit_events


def test_same_family_name_and_birth_date_shows_the_match(app, desk):
    first = register_ok(desk)
    # Different given name, case and accents: the family *key* and the date decide.
    response = register(desk, given_name="Beatriz", family_name="MUNOZ", phone_mobile="")
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "This patient may already be registered" in html
    assert f'href="/patients/{first}"' in html
    assert "Muñoz, Ana (Annie)" in html
    assert "3 Feb 1980" in html
    stored = patients(app)
    assert [p.id for p in stored] == [first]
    assert stored[0].mrn in html
    assert 'name="different_person"' in html
    # What was typed is kept for the retry.
    assert 'value="Beatriz"' in html


def test_same_phone_in_another_slot_shows_the_match(app, desk):
    first = register_ok(desk, phone_mobile="", phone_work="413 555 0177")
    response = register(
        desk,
        given_name="Otto",
        family_name="Keller",
        birth_date="1955-06-01",
        phone_mobile="",
        phone_home="(413) 555-0177",
    )
    assert response.status_code == 409
    assert f'href="/patients/{first}"' in response.get_data(as_text=True)
    assert len(patients(app)) == 1


def test_unrelated_patient_is_registered_without_a_question(app, desk):
    register_ok(desk)
    register_ok(
        desk,
        given_name="Otto",
        family_name="Keller",
        birth_date="1955-06-01",
        phone_mobile="413 555 0111",
        emergency_contact_phone="",
    )
    # Same family name, another birth date; and an emergency phone equal to a patient's
    # phone is not a match (only the patient's own three phones are compared).
    register_ok(
        desk,
        birth_date="1990-05-05",
        phone_mobile="",
        emergency_contact_phone="(413) 555-0142",
    )
    assert len(patients(app)) == 3


def test_showing_the_matches_is_audited(app, desk):
    first = register_ok(desk)
    register(desk, given_name="Beatriz")
    shown = audit_events(app, "patient.duplicate_shown")
    assert [(e.patient_id, e.category) for e in shown] == [(first, "demographics")]
    assert "Muñoz" not in (shown[0].detail or "")


def test_explicit_different_person_registers_a_second_patient(app, desk):
    first = register_ok(desk)
    assert register(desk, given_name="Beatriz").status_code == 409
    second = register_ok(desk, given_name="Beatriz", different_person="y")
    assert second != first
    stored = {p.id: p for p in patients(app)}
    assert stored[first].mrn != stored[second].mrn
    created = audit_events(app, "patient.create")
    assert created[-1].patient_id == second
    assert "confirmed different person" in created[-1].detail


def test_override_box_is_not_ticked_for_the_user(app, desk):
    register_ok(desk)
    html = register(desk, given_name="Beatriz").get_data(as_text=True)
    assert "checked" not in html.split('name="different_person"')[0].rsplit("<input", 1)[1]
    assert "checked" not in html.split('name="different_person"')[1].split(">", 1)[0]

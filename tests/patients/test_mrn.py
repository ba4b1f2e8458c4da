"""Medical record numbers: 9 digits with a Luhn check digit, unique, redrawn on a collision."""

from __future__ import annotations

import random

from portal.extensions import db
from portal.patients import services
from portal.patients.identifiers import is_valid_mrn, luhn_check_digit, new_mrn
from portal.patients.models import Patient
from tests.patients.helpers import patients, register_ok
from tests.support.clients import actor_of


def test_generated_mrns_have_a_valid_check_digit(app, desk):
    for index in range(5):
        register_ok(desk, family_name=f"Person{index}", phone_mobile="", emergency_contact_phone="")
    mrns = [p.mrn for p in patients(app)]
    assert len(set(mrns)) == 5
    for mrn in mrns:
        assert len(mrn) == 9 and mrn.isdigit() and mrn[0] != "0"
        assert luhn_check_digit(mrn[:-1]) == mrn[-1]
        assert is_valid_mrn(mrn)


def test_check_digit_catches_every_single_digit_typo():
    mrn = new_mrn(random.Random(3))
    for position in range(9):
        for digit in "0123456789":
            if digit != mrn[position]:
                typo = mrn[:position] + digit + mrn[position + 1 :]
                assert not is_valid_mrn(typo), typo


def test_known_luhn_value():
    # The classic Luhn example: 7992739871 has check digit 3.
    assert luhn_check_digit("7992739871") == "3"


def _demographics(**overrides) -> dict:
    from datetime import date

    values = {
        "given_name": "Ada",
        "family_name": "Lovelace",
        "birth_date": date(1970, 12, 10),
        "sex_at_birth": "female",
    }
    values.update(overrides)
    return values


def test_collision_with_an_existing_mrn_draws_another(app):
    taken = new_mrn(random.Random(42))
    with app.app_context():
        db.session.add(
            Patient(
                mrn=taken,
                given_name="Existing",
                family_name="Holder",
                given_key="existing",
                family_key="holder",
                birth_date=_demographics()["birth_date"],
                sex_at_birth="male",
            )
        )
        db.session.commit()
        # The same seed proposes the taken MRN first: the insert must retry, not fail.
        created = services.register_patient(
            actor_of("frontdesk"), _demographics(), rng=random.Random(42)
        )
        assert created.mrn != taken
        assert is_valid_mrn(created.mrn)
        replay = random.Random(42)
        new_mrn(replay)
        assert created.mrn == new_mrn(replay)  # the second draw of the same sequence
        assert db.session.scalar(db.select(db.func.count()).select_from(Patient)) == 2

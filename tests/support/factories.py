"""Rows made directly with the models, for tests that start from data rather than from the
forms, so each does not spell out the registry's derived columns."""

from __future__ import annotations

from datetime import date

from portal.patients.identifiers import new_mrn, search_key
from portal.patients.models import Patient


def patient_row(given: str, family: str, birth_date: date, sex_at_birth: str = "female", **columns):
    """A Patient, not yet added to the session, with a fresh MRN and the search keys the
    registry fills in; ``columns`` sets any other column."""
    return Patient(
        mrn=new_mrn(),
        given_name=given,
        family_name=family,
        given_key=search_key(given),
        family_key=search_key(family),
        birth_date=birth_date,
        sex_at_birth=sex_at_birth,
        **columns,
    )

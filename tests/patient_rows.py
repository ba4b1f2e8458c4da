"""A patient row for the tests that build their data with the models directly (fixtures and
helpers of several folders), so each does not spell out the registry's derived columns."""

from __future__ import annotations

from datetime import date


def patient_row(given: str, family: str, birth_date: date, sex_at_birth: str = "female", **columns):
    """A Patient, not yet added to the session, with a fresh MRN and the search keys the
    registry fills in; ``columns`` sets any other column."""
    # Imported here, as the fixtures that call this did: nothing of the app at collection.
    from portal.patients.identifiers import new_mrn, search_key
    from portal.patients.models import Patient

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

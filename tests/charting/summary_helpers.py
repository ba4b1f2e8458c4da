"""Chart rows for part D's tests (summary, visit summary, worklist), made with the models.

The tests of the summary read charts; building those charts through other parts' services
would couple these tests to their forms, so rows are inserted directly, as a migration or
an import would.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from sqlalchemy import select

from portal.auth.models import User
from portal.charting.models import Encounter, Note, NoteAddendum
from portal.extensions import db
from portal.patients.identifiers import new_mrn, search_key
from portal.patients.models import Patient
from portal.timeutil import utcnow


def user_id(username: str) -> int:
    return db.session.scalar(select(User.id).where(User.username == username))


def make_patient(given: str = "Ada", family: str = "Lovelace", birth=date(1980, 5, 17)) -> Patient:
    patient = Patient(
        mrn=new_mrn(),
        given_name=given,
        family_name=family,
        given_key=search_key(given),
        family_key=search_key(family),
        birth_date=birth,
        sex_at_birth="female",
    )
    db.session.add(patient)
    db.session.flush()
    return patient


def make_encounter(patient, *, days_ago: float = 1, complaint="Cough", provider="drlee", **kw):
    encounter = Encounter(
        patient_id=patient.id,
        provider_id=user_id(provider),
        kind=kw.pop("kind", "office"),
        chief_complaint=complaint,
        occurred_at=utcnow() - timedelta(days=days_ago),
        **kw,
    )
    db.session.add(encounter)
    db.session.flush()
    return encounter


def make_note(encounter, *, text="Subjective: well.", signed=True, author="drlee", **kw) -> Note:
    now = utcnow()
    created = kw.pop("created_at", encounter.occurred_at)
    note = Note(
        encounter_id=encounter.id,
        patient_id=encounter.patient_id,
        author_id=user_id(author),
        kind=kw.pop("kind", "provider"),
        text=text,
        created_at=created,
        saved_at=created,
        signed_at=(kw.pop("signed_at", now) if signed else None),
        signed_by_id=user_id(author) if signed else None,
        signed_text_sha256=hashlib.sha256(text.encode()).hexdigest() if signed else None,
        **kw,
    )
    db.session.add(note)
    db.session.flush()
    return note


def add_addendum(note, text: str, author="drlee") -> NoteAddendum:
    addendum = NoteAddendum(
        note_id=note.id,
        author_id=user_id(author),
        text=text,
        signed_text_sha256=hashlib.sha256(text.encode()).hexdigest(),
    )
    db.session.add(addendum)
    db.session.flush()
    return addendum

"""A small chart to work on, for any test folder: ``chart`` and the row makers.

``chart`` adds a second prescriber (drpatel), two visit types (an office follow-up and a
telehealth visit) and two patients to the baseline. ``make_appointment``, ``make_encounter``
and ``make_note`` insert rows directly (as the use cases would leave them) and return ids;
``add_snippet`` gives a user a note snippet; ``provider_note`` reads the provider note back.

A folder's conftest.py imports the fixtures it needs (tests/charting and tests/e2e do), as
they import the browser fixtures from tests/support/browser.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.timeutil import utcnow
from tests.support.database import TOTP_SECRETS
from tests.support.factories import patient_row


@dataclass
class Chart:
    drlee: int
    drpatel: int
    nurse: int
    main_street: int
    follow_up: int  # office, in person
    video_visit: int  # telehealth
    patients: list[int]


def user_id(username: str) -> int:
    from portal.auth.models import User

    return db.session.scalar(select(User.id).where(User.username == username))


# drpatel signs in with a second factor like every prescriber (tests.support.clients.fresh_totp).
DRPATEL_TOTP = "ONSWG4TFORRW6ZDFONSWG4TFORRW6ZDF"


@pytest.fixture
def chart(app, password_hash, monkeypatch) -> Chart:
    from portal.auth.models import User
    from portal.clinic.models import Location
    from portal.crypto import encrypt_text
    from portal.scheduling.models import AppointmentType

    with app.app_context():
        drlee = db.session.scalars(select(User).filter_by(username="drlee")).one()
        drpatel = User(username="drpatel", full_name="Anita Patel", password_hash=password_hash)
        drpatel.set_roles(["prescriber"])
        drpatel.totp_secret_encrypted = encrypt_text(DRPATEL_TOTP)
        drpatel.mfa_enabled = True
        monkeypatch.setitem(TOTP_SECRETS, "drpatel", DRPATEL_TOTP)
        db.session.add(drpatel)
        follow_up = AppointmentType(
            name="Follow-up", default_minutes=20, providers=[drlee, drpatel]
        )
        video = AppointmentType(
            name="Video visit", default_minutes=20, modality="telehealth", providers=[drlee]
        )
        patients = []
        for given, family, born in (
            ("Ada", "Lovelace", date(1985, 12, 10)),
            ("Alan", "Turing", date(1972, 6, 23)),
        ):
            patients.append(patient_row(given, family, born, sex_at_birth="unknown"))
        db.session.add_all([follow_up, video, *patients])
        db.session.commit()
        return Chart(
            drlee=drlee.id,
            drpatel=drpatel.id,
            nurse=user_id("nurse"),
            main_street=db.session.scalar(select(Location.id).filter_by(name="Main Street")),
            follow_up=follow_up.id,
            video_visit=video.id,
            patients=[p.id for p in patients],
        )


@pytest.fixture
def make_appointment(app, chart):
    """make_appointment(status="arrived", type_id=None, patient=0, reason=None) -> id; now-ish."""

    def make(status="arrived", type_id=None, patient=0, reason=None) -> int:
        from portal.scheduling.models import Appointment

        starts_at = utcnow().replace(second=0, microsecond=0)
        with app.app_context():
            appointment = Appointment(
                patient_id=chart.patients[patient],
                provider_id=chart.drlee,
                location_id=chart.main_street,
                appointment_type_id=type_id or chart.follow_up,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(minutes=20),
                status=status,
                reason=reason,
            )
            db.session.add(appointment)
            db.session.commit()
            return appointment.id

    return make


@pytest.fixture
def make_encounter(app, chart):
    """make_encounter(patient=0, kind="office", days_ago=0) -> id, provider drlee."""

    def make(patient=0, kind="office", days_ago=0, chief_complaint="Cough") -> int:
        from portal.charting.models import Encounter

        with app.app_context():
            encounter = Encounter(
                patient_id=chart.patients[patient],
                provider_id=chart.drlee,
                location_id=chart.main_street,
                kind=kind,
                chief_complaint=chief_complaint,
                occurred_at=utcnow() - timedelta(days=days_ago),
                created_by_id=chart.drlee,
            )
            db.session.add(encounter)
            db.session.commit()
            return encounter.id

    return make


@pytest.fixture
def make_note(app, chart):
    """make_note(encounter_id, kind="provider", author="drlee", text=..., signed=False) -> id."""

    def make(
        encounter_id,
        kind="provider",
        author="drlee",
        text="S: cough\nP: rest",
        signed=False,
        hours_ago=0,
    ) -> int:
        from portal.charting.models import Encounter, Note
        from portal.charting.notes.services import sha256_text

        with app.app_context():
            encounter = db.session.get(Encounter, encounter_id)
            author_id = user_id(author)
            at = utcnow() - timedelta(hours=hours_ago)
            note = Note(
                encounter_id=encounter_id,
                patient_id=encounter.patient_id,
                author_id=author_id,
                kind=kind,
                text=text,
                version=1,
                saved_at=at,
                saved_by_id=author_id,
                created_at=at,
            )
            if signed:
                note.signed_at = at
                note.signed_by_id = author_id
                note.signed_text_sha256 = sha256_text(text)
            db.session.add(note)
            db.session.commit()
            return note.id

    return make


def add_snippet(app, owner_id: int, trigger: str, body: str) -> None:
    """Give ``owner_id`` a snippet: typing ``trigger`` in a note expands to ``body``."""
    from portal.charting.models import NoteSnippet

    with app.app_context():
        db.session.add(NoteSnippet(owner_id=owner_id, trigger=trigger, body=body))
        db.session.commit()


def provider_note(app):
    """The (one) provider note as the database holds it now, detached."""
    from portal.charting.models import Note

    with app.app_context():
        note = db.session.scalar(select(Note).where(Note.kind == "provider"))
        db.session.expunge_all()
        return note

"""Rows the list tests start from (part C): a patient, an encounter, and readers of what
the database holds. Encounters are made directly with the models (their pages belong to
part A)."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select

from portal.extensions import db
from tests.support.factories import patient_row

BIRTH_DATE = date(1960, 5, 17)


def make_patient(app, family: str = "Lister", given: str = "Ada") -> int:
    with app.app_context():
        patient = patient_row(given, family, BIRTH_DATE)
        db.session.add(patient)
        db.session.commit()
        return patient.id


def make_encounter(app, patient_id: int) -> int:
    from portal.auth.models import User
    from portal.charting.models import Encounter

    with app.app_context():
        provider = db.session.scalars(select(User).filter_by(username="drlee")).one()
        encounter = Encounter(patient_id=patient_id, provider_id=provider.id, kind="office")
        db.session.add(encounter)
        db.session.commit()
        return encounter.id


def rows(app, model, **filters) -> list:
    """Rows of ``model`` matching ``filters``, detached and readable."""
    with app.app_context():
        found = list(db.session.scalars(select(model).filter_by(**filters)))
        for row in found:
            db.session.expunge(row)
        return found


def audit_events(app, category: str) -> list:
    from portal.audit.models import AuditEvent

    with app.app_context():
        return [
            (event.action, event.patient_id, event.detail)
            for event in db.session.scalars(
                select(AuditEvent).where(AuditEvent.category == category).order_by(AuditEvent.id)
            )
        ]


def text_of(response) -> str:
    return response.get_data(as_text=True)


def version_of(html: str) -> str:
    return re.search(r'name="(?:[\w-]+-)?version"[^>]*value="(\d+)"', html).group(1)

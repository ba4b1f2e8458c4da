"""Signed is signed for prescriptions, in the database itself: once ``signed_at`` is set, what
was signed cannot change or be deleted by any path (the ORM, raw SQL); only the transmission
moves. A printed prescription never gains a vendor id (it is never transmitted afterwards)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from portal.extensions import db
from portal.prescriptions import states
from portal.prescriptions.models import Prescription
from portal.timeutil import utcnow


def _portal_prescription(app, chart, **columns) -> int:
    with app.app_context():
        columns = {"state": states.DRAFT, **columns}
        row = Prescription(
            patient_id=chart.patients[0],
            origin="portal",
            drug="lisinopril 10 MG Oral Tablet",
            rxcui="314076",
            quantity="30",
            refills="2",
            directions="Take 1 tablet by mouth once daily",
            fhir_status="draft",
            written_on=date(2026, 12, 6),
            **columns,
        )
        db.session.add(row)
        db.session.commit()
        return row.id


def _signed(app, chart) -> int:
    return _portal_prescription(
        app, chart, signed_at=utcnow(), state=states.SIGNED, digest="ab" * 32
    )


def test_a_draft_changes_freely_and_can_be_discarded(app, chart):
    draft_id = _portal_prescription(app, chart)
    with app.app_context():
        db.session.execute(
            text("UPDATE prescriptions SET quantity = '60' WHERE id = :id"), {"id": draft_id}
        )
        db.session.execute(text("DELETE FROM prescriptions WHERE id = :id"), {"id": draft_id})
        db.session.commit()
        assert db.session.get(Prescription, draft_id) is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE prescriptions SET quantity = '90' WHERE id = :id",
        "UPDATE prescriptions SET directions = 'Take 2 tablets' WHERE id = :id",
        "UPDATE prescriptions SET refills = '11' WHERE id = :id",
        "UPDATE prescriptions SET signed_at = NULL WHERE id = :id",
        "UPDATE prescriptions SET overrides = '[]' WHERE id = :id",
        "DELETE FROM prescriptions WHERE id = :id",
    ],
)
def test_what_was_signed_cannot_change_by_raw_sql(app, chart, statement):
    signed_id = _signed(app, chart)
    with app.app_context():
        with pytest.raises(DBAPIError, match=r"signed prescription cannot be (changed|deleted)"):
            db.session.execute(text(statement), {"id": signed_id})
        db.session.rollback()


def test_what_was_signed_cannot_change_through_the_orm(app, chart):
    signed_id = _signed(app, chart)
    with app.app_context():
        row = db.session.get(Prescription, signed_id)
        row.drug = "lisinopril 40 MG Oral Tablet"
        with pytest.raises(DBAPIError, match="signed prescription cannot be changed"):
            db.session.commit()
        db.session.rollback()
        assert db.session.get(Prescription, signed_id).drug == "lisinopril 10 MG Oral Tablet"


def test_the_transmission_still_moves_after_signing(app, chart):
    signed_id = _signed(app, chart)
    with app.app_context():
        row = db.session.get(Prescription, signed_id)
        row.state = states.PHARMACY_VERIFIED
        row.connector, row.vendor_id, row.status = "dosespot", "9001", "PharmacyVerified"
        row.pharmacy_id, row.pharmacy_name = "77", "Main Street Pharmacy"
        db.session.commit()
        assert db.session.get(Prescription, signed_id).state == states.PHARMACY_VERIFIED


def test_a_printed_prescription_is_never_transmitted_afterwards(app, chart):
    printed_id = _signed(app, chart)
    with app.app_context():
        db.session.execute(
            text(
                "UPDATE prescriptions SET printed_at = signed_at, state = 'printed', "
                "print_reason = 'No e-prescribing connector' WHERE id = :id"
            ),
            {"id": printed_id},
        )
        db.session.commit()
        for statement in (
            "UPDATE prescriptions SET vendor_id = '9002', connector = 'dosespot' WHERE id = :id",
            "UPDATE prescriptions SET printed_at = NULL WHERE id = :id",
        ):
            with pytest.raises(DBAPIError, match="never transmitted or printed again"):
                db.session.execute(text(statement), {"id": printed_id})
            db.session.rollback()

"""Two patients whose records the nurse opened, for the audit report's patient tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from portal.extensions import db
from tests.support.factories import patient_row


@dataclass
class Opened:
    ada: int
    ada_mrn: str
    alan: int
    alan_mrn: str


def two_patients_opened(app, signed_in) -> Opened:
    """Ada Lovelace and Alan Turing, each opened once by the nurse (a patient.view each)."""
    with app.app_context():
        ada = patient_row("Ada", "Lovelace", date(1985, 12, 10))
        alan = patient_row("Alan", "Turing", date(1972, 6, 23), sex_at_birth="male")
        db.session.add_all([ada, alan])
        db.session.commit()
        opened = Opened(ada.id, ada.mrn, alan.id, alan.mrn)
    nurse = signed_in("nurse")
    nurse.get(f"/patients/{opened.ada}")
    nurse.get(f"/patients/{opened.alan}")
    return opened

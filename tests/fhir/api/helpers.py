"""Rows and a stand-in clinical resource type for the FHIR API's tests.

``VisitSpec`` serves a made-up clinical type under the name "Encounter" (when the real
resource types are not registered), read from a list, so the HTTP layer's ``_include`` and
``$everything`` can be tested on their own: it points at a Patient, a Practitioner and a
Location as real encounters do.
"""

from __future__ import annotations

from datetime import date

from portal.extensions import db
from portal.fhir.spec import Criterion, InvalidSearch, Page
from tests.support.factories import patient_row


def add_patients(app, *people: tuple[str, str, date], **columns) -> list[int]:
    """Patients (given, family, birth date) added in one commit; their ids, in order."""
    with app.app_context():
        rows = [patient_row(given, family, born, **columns) for given, family, born in people]
        db.session.add_all(rows)
        db.session.commit()
        return [row.id for row in rows]


class VisitSpec:
    """A list-backed clinical type: ``rows`` are (id, patient id, practitioner id, location
    id). Search by ``patient``; include ``Encounter:patient`` / ``Encounter:practitioner``."""

    type = "Encounter"
    search_params = {"patient": "reference"}
    includes = {
        "Encounter:patient": "Patient",
        "Encounter:practitioner": "Practitioner",
        "Encounter:location": "Location",
    }

    def __init__(self, rows: list[tuple[int, int, int, int]]):
        self.rows = rows

    def resource(self, row) -> dict:
        visit_id, patient_id, practitioner_id, location_id = row
        return {
            "resourceType": "Encounter",
            "id": str(visit_id),
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
            },
            "subject": {"reference": f"Patient/{patient_id}"},
            "participant": [{"individual": {"reference": f"Practitioner/{practitioner_id}"}}],
            "location": [{"location": {"reference": f"Location/{location_id}"}}],
        }

    def _matching(self, criteria: list[Criterion]):
        rows = self.rows
        for criterion in criteria:
            if criterion.name == "patient":
                wanted = {v.removeprefix("Patient/") for v in criterion.values}
                rows = [row for row in rows if str(row[1]) in wanted]
            elif criterion.name == "_id":
                rows = [row for row in rows if str(row[0]) in criterion.values]
            else:
                raise InvalidSearch(criterion.name, "not supported")
        return sorted(rows)

    def read(self, fhir_id):
        found = [row for row in self.rows if str(row[0]) == fhir_id]
        return self.resource(found[0]) if found else None

    def search(self, criteria, after, count):
        rows = [row for row in self._matching(criteria) if row[0] > int(after or 0)]
        page = rows[:count]
        next_after = str(page[-1][0]) if len(rows) > count else None
        return Page([self.resource(row) for row in page], next_after)

    def count(self, criteria):
        return len(self._matching(criteria))

    def for_patient(self, patient_id, since=None, care=()):
        for row in self.rows:
            if row[1] == patient_id:
                yield self.resource(row)

    def stream(self, since, patient_ids):
        for row in self.rows:
            yield self.resource(row)

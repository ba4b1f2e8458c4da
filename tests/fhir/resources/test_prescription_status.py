"""Prescriptions as MedicationRequest follow DOSESPOT.md section 6: FHIR's status from the one
table in code (``integrations/dosespot/statuses``), the vendor's transmission status in an
extension and its pharmacy status as ``statusReason``; a failed transmission is a draft that
says why. Every state DoseSpot names, through the API, valid R4."""

from __future__ import annotations

from datetime import date

import pytest
from fhir.resources.medicationrequest import MedicationRequest
from sqlalchemy import select

from portal.auth.models import User
from portal.extensions import db
from portal.fhir.resources.medication_request import VENDOR_STATUS_EXTENSION
from portal.integrations.dosespot.statuses import fhir_status
from portal.prescriptions.models import Prescription
from tests.fhir.api.helpers import add_patients
from tests.fhir.api_support import api_headers

# (PrescriptionStatus, MedicationStatus) -> FHIR status, as section 6 writes it.
SECTION_6 = [
    ("Entered", None, "draft"),
    ("Edited", None, "draft"),
    ("ReadyToSign", None, "draft"),
    ("Requested", None, "draft"),
    ("EpcsSigned", None, "draft"),
    ("Sending", None, "active"),
    ("eRxSent", None, "active"),
    ("PharmacyVerified", None, "active"),
    ("Printed", None, "active"),
    ("eRxSent", "Active", "active"),
    ("PharmacyVerified", "PartialFill", "active"),
    ("PharmacyVerified", "FullFill", "completed"),
    ("eRxSent", "Completed", "completed"),
    ("eRxSent", "Cancelled", "cancelled"),
    ("PharmacyVerified", "Discontinued", "stopped"),
    ("Deleted", None, "entered-in-error"),
    ("Error", None, "draft"),
    ("EpcsError", None, "draft"),
]


@pytest.mark.parametrize("status, medication_status, expected", SECTION_6)
def test_each_vendor_state_is_served_with_the_section_6_status(
    app, status, medication_status, expected
):
    (patient,) = add_patients(app, ("Rx", "Statuses", date(1970, 1, 1)))
    with app.app_context():
        prescriber = db.session.scalar(select(User.id).where(User.username == "drlee"))
        # As the vendor's read writes it (prescriptions/services._write_back).
        row = Prescription(
            patient_id=patient,
            connector="dosespot",
            vendor_id="V1",
            origin="vendor",
            prescriber_id=prescriber,
            drug="Lisinopril 10 mg tablet",
            rxcui="314076",
            status=status,
            medication_status=medication_status,
            fhir_status=fhir_status(status, medication_status)[0],
        )
        db.session.add(row)
        db.session.commit()
        rx_id = row.id
    response = app.test_client().get(
        f"/fhir/MedicationRequest/rx-{rx_id}", headers=api_headers(app)
    )
    assert response.status_code == 200
    resource = response.get_json(force=True)
    MedicationRequest.parse_obj(resource)
    assert resource["status"] == expected
    assert resource["intent"] == "order"
    (extension,) = resource["extension"]
    assert extension["url"] == VENDOR_STATUS_EXTENSION
    assert extension["valueCoding"] == {
        "system": "urn:practice-portal:dosespot:prescription-status",
        "code": status,
    }
    reason = resource.get("statusReason")
    if medication_status:
        assert reason["coding"] == [
            {"system": "urn:practice-portal:dosespot:medication-status", "code": medication_status}
        ]
    elif status in ("Error", "EpcsError"):
        assert "transmission failed" in reason["text"]
    else:
        assert reason is None


def test_a_renewal_names_the_prescription_it_renews(app):
    (patient,) = add_patients(app, ("Rx", "Renewed", date(1970, 1, 1)))
    with app.app_context():
        prescriber = db.session.scalar(select(User.id).where(User.username == "drlee"))

        def vendor_row(vendor_id: str, renews: int | None = None) -> Prescription:
            return Prescription(
                patient_id=patient,
                connector="dosespot",
                vendor_id=vendor_id,
                origin="vendor",
                prescriber_id=prescriber,
                drug="Lisinopril 10 mg tablet",
                rxcui="314076",
                status="PharmacyVerified",
                fhir_status="active",
                renews_prescription_id=renews,
            )

        original = vendor_row("V10")
        db.session.add(original)
        db.session.flush()
        renewal = vendor_row("V11", renews=original.id)
        db.session.add(renewal)
        db.session.commit()
        original_id, renewal_id = original.id, renewal.id
    client, headers = app.test_client(), api_headers(app)
    resource = client.get(f"/fhir/MedicationRequest/rx-{renewal_id}", headers=headers).get_json(
        force=True
    )
    MedicationRequest.parse_obj(resource)
    assert resource["priorPrescription"] == {"reference": f"MedicationRequest/rx-{original_id}"}
    first = client.get(f"/fhir/MedicationRequest/rx-{original_id}", headers=headers).get_json(
        force=True
    )
    assert "priorPrescription" not in first

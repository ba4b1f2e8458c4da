"""send_prescription through the outbox's entry point: no second prescription on a retry."""

from __future__ import annotations

import pytest

from portal.integrations.base import PermanentError
from portal.integrations.dosespot.statuses import fhir_status
from tests.integrations.dosespot.helpers import PRESCRIBER, connector, prescription, snapshot

KEY = "dosespot:send_prescription:rx-41"


def _payload(patient_id, **changes):
    payload = {
        "clinician_id": PRESCRIBER,
        "dosespot_patient_id": patient_id,
        "prescription": prescription(),
    }
    payload.update(changes)
    return payload


def test_delivered_twice_it_leaves_one_prescription_sent_once(sandbox):
    ds = connector(sandbox)
    patient_id = ds.sync_patient(PRESCRIBER, snapshot())
    first = ds.deliver("send_prescription", _payload(patient_id), KEY)
    assert first["created"] and first["sent"]
    again = ds.deliver("send_prescription", _payload(patient_id), KEY)  # the retry
    assert again["dosespot_prescription_id"] == first["dosespot_prescription_id"]
    assert not again["created"] and not again["sent"]
    [stored] = sandbox.prescriptions()
    assert stored["NonDoseSpotPrescriptionId"] == KEY
    assert stored["Status"] != 1  # left Entered: sent


def test_a_crash_between_create_and_send_sends_the_first_one(sandbox):
    ds = connector(sandbox)
    patient_id = ds.sync_patient(PRESCRIBER, snapshot())
    # The first try created the prescription, then the worker died before sending it.
    landed = ds.client.post(
        f"api/patients/{patient_id}/prescriptions/coded",
        PRESCRIBER,
        {
            "DispensableDrugId": 5001,
            "DispenseUnitId": 26,
            "Quantity": "30",
            "Refills": 2,
            "Directions": "Take one tablet by mouth daily.",
            "Status": 1,
            "PharmacyId": 3001,
            "NonDoseSpotPrescriptionId": KEY,
        },
    )["Id"]
    retried = ds.deliver("send_prescription", _payload(patient_id), KEY)
    assert retried == {
        "dosespot_patient_id": patient_id,
        "dosespot_prescription_id": landed,
        "created": False,
        "sent": True,
        "status": "Sending",
    }
    assert len(sandbox.prescriptions()) == 1


def test_a_patient_without_an_id_is_synced_first(sandbox):
    ds = connector(sandbox)
    done = ds.deliver(
        "send_prescription",
        _payload(None, patient=snapshot(), prescription_id="rx-7"),
        KEY,
    )
    [patient] = sandbox.patients()
    [stored] = sandbox.prescriptions()
    assert done["dosespot_patient_id"] == patient["PatientId"]
    assert stored["NonDoseSpotPrescriptionId"] == "rx-7"


def test_a_refused_send_is_permanent_and_says_which_prescription(sandbox):
    ds = connector(sandbox)
    patient_id = ds.sync_patient(PRESCRIBER, snapshot())
    with pytest.raises(PermanentError) as refused:
        ds.deliver(
            "send_prescription",
            _payload(patient_id, prescription=prescription(pharmacy_id=None)),
            KEY,
        )
    assert "did not send" in str(refused.value)


def test_an_unknown_operation_is_permanent(sandbox):
    with pytest.raises(PermanentError):
        connector(sandbox).deliver("cancel_everything", {}, "k")


@pytest.mark.parametrize(
    ("transmission", "pharmacy", "expected"),
    [
        ("Entered", "Active", ("draft", False)),
        ("PharmacyVerified", "Active", ("active", False)),
        ("PharmacyVerified", "FullFill", ("completed", False)),
        ("eRxSent", "Cancelled", ("cancelled", False)),
        ("Error", "Active", ("draft", True)),
        ("Deleted", "Active", ("entered-in-error", False)),
        (None, None, ("unknown", True)),
    ],
)
def test_fhir_status_reads_both_statuses(transmission, pharmacy, expected):
    assert fhir_status(transmission, pharmacy) == expected

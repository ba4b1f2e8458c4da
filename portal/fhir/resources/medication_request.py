"""MedicationRequest: the medication list (intent ``plan``) and the prescriptions written
through the e-prescribing vendor (intent ``order``), coded in RxNorm (US Core
MedicationRequest).

The medication list says what the patient takes, whoever prescribed it: an entry is
``active``, ``stopped`` (with the reason), ``completed`` once its stop date has passed
without anyone stopping it, or ``entered-in-error``; an entry the patient reported, or that
came from another record, is ``reportedBoolean: true``. Its id is the list entry's id.

A prescription's status is the one the e-prescribing status table gives
(``integrations/dosespot/statuses.FHIR_STATUS``, stored on the row as ``fhir_status`` each
time the vendor's state is read), so the chart and the API never disagree: a prescription
not sent yet is served as ``draft`` and one the vendor deleted as ``entered-in-error``, FHIR's
own words for them, rather than left out; a draft composed in the portal is not served until
it is signed. Its id is ``rx-<prescription id>``. A prescription made from the list has both:
the plan and the order. The vendor's own statuses travel beside FHIR's (DOSESPOT.md section
6): its transmission status in an extension, its pharmacy status as ``statusReason``.
"""

from __future__ import annotations

import re

from sqlalchemy import and_, or_, select, true

from portal.charting.models import Medication
from portal.clinic.clock import clinic_today
from portal.fhir import params
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.resources.base import (
    Source,
    TableSpec,
    instant,
    prune,
    reference,
    status_condition,
)
from portal.ids import parse_id
from portal.prescriptions.models import Prescription

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
STATUS_SYSTEM = "http://hl7.org/fhir/CodeSystem/medicationrequest-status"
INTENT_SYSTEM = "http://hl7.org/fhir/CodeSystem/medicationrequest-intent"
# Medication list sources a clinician here did not prescribe.
REPORTED_SOURCES = ("self_reported", "outside_record")
_RX_ID = re.compile(r"^rx-(\d{1,10})$")


def _medication(rxnorm_code: str | None, drug: str) -> dict:
    if rxnorm_code:
        return {
            "coding": [{"system": RXNORM, "code": rxnorm_code, "display": drug}],
            "text": drug,
        }
    return {"text": drug}


def _intent_condition(criterion, intent: str):
    """Every row of a source has the same intent."""
    match = params.code_in(Medication.id, {intent: true()})
    return params.token_condition(criterion, {None: match, INTENT_SYSTEM: match})


def list_status(status: str, stop_date, today) -> str:
    if status == "entered_in_error":
        return "entered-in-error"
    if status == "stopped":
        return "stopped"
    if stop_date is not None and stop_date < today:
        return "completed"
    return "active"


class MedicationList(Source):
    name = "m"
    key_columns = (Medication.id,)
    patient_column = Medication.patient_id
    changed_column = Medication.updated_at

    def select(self):
        return select(
            Medication.id,
            Medication.patient_id,
            Medication.drug,
            Medication.rxnorm_code,
            Medication.dose,
            Medication.route,
            Medication.frequency,
            Medication.start_date,
            Medication.stop_date,
            Medication.prescriber,
            Medication.source,
            Medication.status,
            Medication.stop_reason,
            Medication.created_at,
        )

    def id_condition(self, fhir_id):
        found = parse_id(fhir_id)
        return Medication.id == found if found is not None and str(found) == fhir_id else None

    def condition(self, criterion, zone):
        name = criterion.name
        if name == "status":
            today = clinic_today()
            ended = and_(Medication.stop_date.is_not(None), Medication.stop_date < today)
            mapping = {
                "active": and_(Medication.status == "active", ~ended),
                "completed": and_(Medication.status == "active", ended),
                "stopped": Medication.status == "stopped",
                "entered-in-error": Medication.status == "entered_in_error",
            }
            return status_condition(criterion, Medication.status, mapping, STATUS_SYSTEM)
        if name == "intent":
            return _intent_condition(criterion, "plan")
        if name == "code":
            return params.token_condition(
                criterion, {RXNORM: params.code_in(Medication.rxnorm_code)}
            )
        if name == "authoredon":
            return params.date_condition(criterion, Medication.created_at, zone=zone)
        return super().condition(criterion, zone)

    def build(self, rows):
        today = clinic_today()
        return [((row.id,), list_entry_to_fhir(row, today)) for row in rows]


def list_entry_to_fhir(row, today) -> dict:
    status = list_status(row.status, row.stop_date, today)
    instructions = " ".join(part for part in (row.dose, row.route, row.frequency) if part)
    return prune(
        {
            "resourceType": "MedicationRequest",
            "id": str(row.id),
            "status": status,
            "statusReason": {"text": row.stop_reason}
            if status == "stopped" and row.stop_reason
            else None,
            "intent": "plan",
            "reportedBoolean": row.source in REPORTED_SOURCES,
            "medicationCodeableConcept": _medication(row.rxnorm_code, row.drug),
            "subject": reference("Patient", row.patient_id),
            "authoredOn": instant(row.created_at),
            # The list keeps the prescriber's name as written (often someone elsewhere).
            "requester": {"display": row.prescriber} if row.prescriber else None,
            "dosageInstruction": [
                prune(
                    {
                        "text": instructions or None,
                        "route": {"text": row.route} if row.route else None,
                    }
                )
            ]
            if instructions
            else None,
            "dispenseRequest": {
                "validityPeriod": prune(
                    {
                        "start": row.start_date.isoformat() if row.start_date else None,
                        "end": row.stop_date.isoformat() if row.stop_date else None,
                    }
                )
            }
            if row.start_date or row.stop_date
            else None,
        }
    )


class Prescriptions(Source):
    name = "rx"
    key_columns = (Prescription.id,)
    patient_column = Prescription.patient_id
    changed_column = Prescription.updated_at

    def select(self):
        return select(
            Prescription.id,
            Prescription.patient_id,
            Prescription.prescriber_id,
            Prescription.drug,
            Prescription.rxcui,
            Prescription.quantity,
            Prescription.refills,
            Prescription.days_supply,
            Prescription.directions,
            Prescription.fhir_status,
            Prescription.connector,
            Prescription.status.label("vendor_status"),
            Prescription.medication_status,
            Prescription.written_on,
            Prescription.created_at,
            Prescription.renews_prescription_id,
        ).where(
            # A prescription composed here is the prescriber's working draft until it is
            # signed: not a record to share (one written at the vendor is the vendor's).
            or_(Prescription.origin != "portal", Prescription.signed_at.is_not(None))
        )

    def id_condition(self, fhir_id):
        match = _RX_ID.match(fhir_id)
        found = parse_id(match.group(1)) if match else None
        return Prescription.id == found if found is not None else None

    def condition(self, criterion, zone):
        name = criterion.name
        if name == "status":
            return status_condition(criterion, Prescription.fhir_status, None, STATUS_SYSTEM)
        if name == "intent":
            match = params.code_in(Prescription.id, {"order": true()})
            return params.token_condition(criterion, {None: match, INTENT_SYSTEM: match})
        if name == "code":
            return params.token_condition(criterion, {RXNORM: params.code_in(Prescription.rxcui)})
        if name == "authoredon":
            # A prescription's day is the day it was written (the clinic's day); one without
            # it (not yet written at the vendor) by when it was recorded here.
            return or_(
                and_(
                    Prescription.written_on.is_not(None),
                    params.date_condition(
                        criterion, Prescription.written_on, zone=zone, day_column=True
                    ),
                ),
                and_(
                    Prescription.written_on.is_(None),
                    params.date_condition(criterion, Prescription.created_at, zone=zone),
                ),
            )
        return super().condition(criterion, zone)

    def build(self, rows):
        return [((row.id,), prescription_to_fhir(row)) for row in rows]


def _number(text: str | None):
    """A vendor's quantity or refills as a number, when it is one ("30", "2.5")."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else value


# The e-prescribing vendor's own statuses beside FHIR's (DOSESPOT.md section 6): its
# transmission status (DoseSpot's PrescriptionStatus) in an extension, its pharmacy-side
# status (MedicationStatus) as ``statusReason``, so a reader sees what FHIR's word stands for.
VENDOR_STATUS_EXTENSION = "urn:practice-portal:fhir:extension:eprescribing-prescription-status"
_FAILED_TRANSMISSION = ("Error", "EpcsError")


def _vendor_status_system(connector: str | None, kind: str) -> str:
    return f"urn:practice-portal:{connector or 'eprescribing'}:{kind}"


def _vendor_statuses(row) -> tuple[list | None, dict | None]:
    """(the extension, the statusReason) of a prescription the vendor has seen."""
    extension = None
    if row.vendor_status:
        extension = [
            {
                "url": VENDOR_STATUS_EXTENSION,
                "valueCoding": {
                    "system": _vendor_status_system(row.connector, "prescription-status"),
                    "code": row.vendor_status,
                },
            }
        ]
    reason = None
    if row.medication_status:
        reason = {
            "coding": [
                {
                    "system": _vendor_status_system(row.connector, "medication-status"),
                    "code": row.medication_status,
                }
            ],
            "text": f"Pharmacy: {row.medication_status}",
        }
    elif row.vendor_status in _FAILED_TRANSMISSION:
        # A draft again, and the prescriber is alerted in the chart: say why it is one.
        reason = {"text": "The electronic transmission failed; the prescriber was alerted."}
    return extension, reason


def prescription_to_fhir(row) -> dict:
    refills = _number(row.refills)
    quantity = _number(row.quantity)
    extension, reason = _vendor_statuses(row)
    return prune(
        {
            "resourceType": "MedicationRequest",
            "id": f"rx-{row.id}",
            "extension": extension,
            "status": row.fhir_status,
            "statusReason": reason,
            "intent": "order",
            "medicationCodeableConcept": _medication(row.rxcui, row.drug),
            "subject": reference("Patient", row.patient_id),
            "authoredOn": row.written_on.isoformat() if row.written_on else instant(row.created_at),
            "requester": reference("Practitioner", row.prescriber_id),
            # A renewal names the prescription it renews (never a draft: drafts are not
            # renewed, and a renewal is shared only once signed).
            "priorPrescription": reference("MedicationRequest", f"rx-{row.renews_prescription_id}")
            if row.renews_prescription_id
            else None,
            "dosageInstruction": [{"text": row.directions}] if row.directions else None,
            "dispenseRequest": prune(
                {
                    "numberOfRepeatsAllowed": refills
                    if isinstance(refills, int) and refills >= 0
                    else None,
                    "quantity": {"value": quantity} if quantity is not None else None,
                    "expectedSupplyDuration": {
                        "value": row.days_supply,
                        "unit": "days",
                        "system": UCUM,
                        "code": "d",
                    }
                    if row.days_supply
                    else None,
                }
            ),
        }
    )


class MedicationRequestSpec(TableSpec):
    type = "MedicationRequest"
    care_date = "authoredon"
    search_params = {
        "patient": "reference",
        "subject": "reference",
        "status": "token",
        "intent": "token",
        "code": "token",
        "authoredon": "date",
    }
    includes = {
        "MedicationRequest:patient": "Patient",
        "MedicationRequest:subject": "Patient",
        "MedicationRequest:requester": "Practitioner",
    }
    sources = (MedicationList(), Prescriptions())


RESOURCE_TYPES["MedicationRequest"] = MedicationRequestSpec()

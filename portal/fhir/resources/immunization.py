"""Immunization: vaccines given here or from another record, and refusals, coded in CVX (US
Core Immunization).

A refusal is ``not-done`` with the reason "patient objection"; a record marked entered in
error is served with status ``entered-in-error`` (FHIR's own status for it), so that a copy
elsewhere can be withdrawn.

Bulk export's ``_since`` reads when the record was recorded: the table keeps no time of the
marking, so a record marked entered in error after an export reaches the next full export,
not an export since then (the audit trail holds when it was marked).
"""

from __future__ import annotations

from sqlalchemy import and_, select

from portal.charting.models import Immunization
from portal.fhir import params
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.resources.base import (
    Source,
    TableSpec,
    concept,
    instant,
    prune,
    reference,
    status_condition,
)
from portal.ids import parse_id
from portal.terminology.cvx import vaccine_name

CVX = "http://hl7.org/fhir/sid/cvx"
STATUS_SYSTEM = "http://hl7.org/fhir/event-status"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
STATUS = {
    "completed": and_(Immunization.entered_in_error.is_(False), Immunization.refused.is_(False)),
    "not-done": and_(Immunization.entered_in_error.is_(False), Immunization.refused.is_(True)),
    "entered-in-error": Immunization.entered_in_error.is_(True),
}


class Immunizations(Source):
    name = "i"
    key_columns = (Immunization.id,)
    patient_column = Immunization.patient_id
    changed_column = Immunization.created_at

    def select(self):
        return select(
            Immunization.id,
            Immunization.patient_id,
            Immunization.encounter_id,
            Immunization.cvx_code,
            Immunization.vaccine,
            Immunization.occurred_on,
            Immunization.dose_number,
            Immunization.lot_number,
            Immunization.manufacturer,
            Immunization.site,
            Immunization.route,
            Immunization.source,
            Immunization.refused,
            Immunization.refusal_reason,
            Immunization.entered_in_error,
            Immunization.created_at,
        )

    def id_condition(self, fhir_id):
        found = parse_id(fhir_id)
        return Immunization.id == found if found is not None and str(found) == fhir_id else None

    def condition(self, criterion, zone):
        if criterion.name == "date":
            return params.date_condition(
                criterion, Immunization.occurred_on, zone=zone, day_column=True
            )
        if criterion.name == "status":
            return status_condition(criterion, Immunization.id, STATUS, STATUS_SYSTEM)
        if criterion.name == "vaccine-code":
            return params.token_condition(criterion, {CVX: params.code_in(Immunization.cvx_code)})
        return super().condition(criterion, zone)

    def build(self, rows):
        return [((row.id,), to_fhir(row)) for row in rows]


def to_fhir(row) -> dict:
    if row.entered_in_error:
        status = "entered-in-error"
    elif row.refused:
        status = "not-done"
    else:
        status = "completed"
    name = vaccine_name(row.cvx_code) or row.vaccine
    return prune(
        {
            "resourceType": "Immunization",
            "id": str(row.id),
            "status": status,
            "statusReason": concept(ACT_REASON, "PATOBJ", "patient objection", row.refusal_reason)
            if row.refused
            else None,
            "vaccineCode": concept(CVX, row.cvx_code, name, row.vaccine),
            "patient": reference("Patient", row.patient_id),
            "encounter": reference("Encounter", row.encounter_id),
            "occurrenceDateTime": row.occurred_on.isoformat(),
            "recorded": instant(row.created_at),
            # Given here is first-hand; a historical record is someone else's word.
            "primarySource": row.source == "administered",
            "manufacturer": {"display": row.manufacturer} if row.manufacturer else None,
            "lotNumber": row.lot_number,
            "site": {"text": row.site} if row.site else None,
            "route": {"text": row.route} if row.route else None,
            "protocolApplied": [{"doseNumberPositiveInt": row.dose_number}]
            if row.dose_number and row.dose_number > 0
            else None,
        }
    )


class ImmunizationSpec(TableSpec):
    type = "Immunization"
    search_params = {
        "patient": "reference",
        "date": "date",
        "status": "token",
        "vaccine-code": "token",
    }
    includes = {"Immunization:patient": "Patient"}
    patient_params = ("patient",)
    sources = (Immunizations(),)


RESOURCE_TYPES["Immunization"] = ImmunizationSpec()

"""Appointment: booked visits, with the patient, the provider and the location as
participants (FHIR R4 Appointment).

Statuses read from the scheduling flow: scheduled and confirmed are ``booked``; checked in
(``arrived``) is ``arrived``; roomed and with the provider are ``checked-in`` (the
pre-encounter work is done and the visit has begun); ``completed`` is ``fulfilled``;
``cancelled`` and ``no_show`` are FHIR's ``cancelled`` and ``noshow``.
"""

from __future__ import annotations

from sqlalchemy import select

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
from portal.scheduling.models import Appointment, AppointmentType

STATUS_SYSTEM = "http://hl7.org/fhir/appointmentstatus"
FHIR_STATUS = {
    "scheduled": "booked",
    "confirmed": "booked",
    "arrived": "arrived",
    "roomed": "checked-in",
    "with_provider": "checked-in",
    "completed": "fulfilled",
    "cancelled": "cancelled",
    "no_show": "noshow",
}
STORED_STATUSES: dict[str, list[str]] = {}
for _stored, _fhir in FHIR_STATUS.items():
    STORED_STATUSES.setdefault(_fhir, []).append(_stored)


class Appointments(Source):
    name = "ap"
    key_columns = (Appointment.id,)
    patient_column = Appointment.patient_id
    changed_column = Appointment.updated_at

    def select(self):
        return select(
            Appointment.id,
            Appointment.patient_id,
            Appointment.provider_id,
            Appointment.location_id,
            Appointment.starts_at,
            Appointment.ends_at,
            Appointment.status,
            Appointment.reason,
            Appointment.created_at,
            AppointmentType.name.label("type_name"),
        ).join(AppointmentType, AppointmentType.id == Appointment.appointment_type_id)

    def id_condition(self, fhir_id):
        found = parse_id(fhir_id)
        return Appointment.id == found if found is not None and str(found) == fhir_id else None

    def condition(self, criterion, zone):
        name = criterion.name
        if name == "date":
            return params.date_condition(criterion, Appointment.starts_at, zone=zone)
        if name == "status":
            return status_condition(criterion, Appointment.status, STORED_STATUSES, STATUS_SYSTEM)
        if name == "practitioner":
            return params.reference_condition(criterion, Appointment.provider_id, "Practitioner")
        if name == "location":
            return params.reference_condition(criterion, Appointment.location_id, "Location")
        return super().condition(criterion, zone)

    def build(self, rows):
        return [((row.id,), to_fhir(row)) for row in rows]


def to_fhir(row) -> dict:
    status = FHIR_STATUS[row.status]
    # A participant's own answer: everyone booked has accepted; a no-show patient did not
    # come.
    patient_answer = "declined" if row.status == "no_show" else "accepted"
    return prune(
        {
            "resourceType": "Appointment",
            "id": str(row.id),
            "status": status,
            "serviceType": [{"text": row.type_name}],
            "reasonCode": [{"text": row.reason}] if row.reason else None,
            "start": instant(row.starts_at),
            "end": instant(row.ends_at),
            "created": instant(row.created_at),
            "participant": [
                {"actor": reference("Patient", row.patient_id), "status": patient_answer},
                {"actor": reference("Practitioner", row.provider_id), "status": "accepted"},
                {"actor": reference("Location", row.location_id), "status": "accepted"},
            ],
        }
    )


class AppointmentSpec(TableSpec):
    type = "Appointment"
    search_params = {
        "patient": "reference",
        "date": "date",
        "status": "token",
        "practitioner": "reference",
        "location": "reference",
    }
    includes = {
        "Appointment:patient": "Patient",
        "Appointment:practitioner": "Practitioner",
        "Appointment:location": "Location",
    }
    patient_params = ("patient",)
    sources = (Appointments(),)


RESOURCE_TYPES["Appointment"] = AppointmentSpec()

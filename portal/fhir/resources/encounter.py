"""Encounter: the chart's visits (office, telehealth, phone), US Core Encounter.

The chart keeps no status of its own on a visit: it is read from the visit's appointment and
its notes. A cancelled appointment's visit is ``cancelled``; a visit whose appointment is
completed, or that has a signed note, is ``finished``; a visit still at check-in or in the
room is ``arrived`` / ``triaged``; any other (with the provider, or an ad hoc visit whose note
is not signed yet) is ``in-progress``. The status is computed in SQL so that ``status=``
searches it like a column.

Each visit's diagnoses (the problems it addressed) are Conditions of their own, category
``encounter-diagnosis`` (``condition.py``), referred to from ``diagnosis``.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import case, exists, or_, select

from portal.charting.models import ENCOUNTER_KINDS, Encounter, Note, encounter_problems
from portal.extensions import db
from portal.fhir import params
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.resources.base import (
    Source,
    TableSpec,
    clinic_id,
    concept,
    instant,
    prune,
    reference,
    status_condition,
)
from portal.ids import parse_id
from portal.scheduling.models import Appointment

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
STATUS_SYSTEM = "http://hl7.org/fhir/encounter-status"
# Encounter.class: a visit in the clinic is ambulatory; telehealth and phone are virtual.
CLASS_OF_KIND = {
    "office": ("AMB", "ambulatory"),
    "telehealth": ("VR", "virtual"),
    "phone": ("VR", "virtual"),
}
KINDS_OF_CLASS = {"AMB": ["office"], "VR": ["telehealth", "phone"]}

_signed_note = exists().where(Note.encounter_id == Encounter.id, Note.signed_at.is_not(None))
STATUS = case(
    (Appointment.status.in_(("cancelled", "no_show")), "cancelled"),
    (Appointment.status == "completed", "finished"),
    (_signed_note, "finished"),
    (Appointment.status == "arrived", "arrived"),
    (Appointment.status == "roomed", "triaged"),
    else_="in-progress",
)
STATUSES = ("planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled")


class Visits(Source):
    name = "e"
    key_columns = (Encounter.id,)
    patient_column = Encounter.patient_id
    changed_column = Encounter.created_at

    def changed_since(self, since):
        # The status is read from the appointment and the notes: either changing changes it.
        return or_(
            Encounter.created_at >= since,
            Appointment.status_changed_at >= since,
            exists().where(Note.encounter_id == Encounter.id, Note.signed_at >= since),
        )

    def select(self):
        return select(
            Encounter.id,
            Encounter.patient_id,
            Encounter.provider_id,
            Encounter.location_id,
            Encounter.appointment_id,
            Encounter.kind,
            Encounter.chief_complaint,
            Encounter.occurred_at,
            STATUS.label("status"),
        ).outerjoin(Appointment, Appointment.id == Encounter.appointment_id)

    def id_condition(self, fhir_id):
        found = parse_id(fhir_id)
        return Encounter.id == found if found is not None and str(found) == fhir_id else None

    def condition(self, criterion, zone):
        if criterion.name == "date":
            return params.date_condition(criterion, Encounter.occurred_at, zone=zone)
        if criterion.name == "status":
            mapping = {status: status == STATUS for status in STATUSES}
            return status_condition(criterion, Encounter.kind, mapping, STATUS_SYSTEM)
        if criterion.name == "class":
            match = params.code_in(Encounter.kind, KINDS_OF_CLASS)
            return params.token_condition(criterion, {ACT_CODE: match})
        if criterion.name == "practitioner":
            return params.reference_condition(criterion, Encounter.provider_id, "Practitioner")
        return super().condition(criterion, zone)

    def build(self, rows):
        ids = [row.id for row in rows]
        diagnoses = defaultdict(list)
        for encounter_id, problem_id in db.session.execute(
            select(encounter_problems.c.encounter_id, encounter_problems.c.problem_id)
            .where(encounter_problems.c.encounter_id.in_(ids))
            .order_by(encounter_problems.c.encounter_id, encounter_problems.c.problem_id)
        ):
            diagnoses[encounter_id].append(problem_id)
        organization = clinic_id()
        return [((row.id,), to_fhir(row, diagnoses[row.id], organization)) for row in rows]


def to_fhir(row, problem_ids: list[int], organization: int | None) -> dict:
    code, display = CLASS_OF_KIND.get(row.kind, CLASS_OF_KIND["office"])
    return prune(
        {
            "resourceType": "Encounter",
            "id": str(row.id),
            "status": row.status,
            "class": {"system": ACT_CODE, "code": code, "display": display},
            "type": [{"text": ENCOUNTER_KINDS.get(row.kind, row.kind)}],
            "subject": reference("Patient", row.patient_id),
            "participant": [
                {
                    "type": [concept(PARTICIPATION_TYPE, "PPRF", "primary performer")],
                    "individual": reference("Practitioner", row.provider_id),
                }
            ],
            "appointment": [reference("Appointment", row.appointment_id)]
            if row.appointment_id
            else None,
            "period": {"start": instant(row.occurred_at)},
            "reasonCode": [{"text": row.chief_complaint}] if row.chief_complaint else None,
            "diagnosis": [
                {"condition": reference("Condition", f"dx-{row.id}-{problem_id}")}
                for problem_id in problem_ids
            ],
            "location": [{"location": reference("Location", row.location_id)}]
            if row.location_id
            else None,
            "serviceProvider": reference("Organization", organization),
        }
    )


class EncounterSpec(TableSpec):
    type = "Encounter"
    search_params = {
        "patient": "reference",
        "subject": "reference",
        "date": "date",
        "status": "token",
        "class": "token",
        "practitioner": "reference",
    }
    includes = {
        "Encounter:patient": "Patient",
        "Encounter:subject": "Patient",
        "Encounter:practitioner": "Practitioner",
        "Encounter:location": "Location",
    }
    sources = (Visits(),)


RESOURCE_TYPES["Encounter"] = EncounterSpec()

"""Condition: the problem list and the visits' diagnoses, coded in ICD-10-CM (US Core
Condition Problems and Health Concerns, and Condition Encounter Diagnosis).

Two sources, one type. A problem is a Condition with category ``problem-list-item`` and the
problem's id. A visit that addressed a problem (``encounter_problems``) gives a Condition
with category ``encounter-diagnosis``, the same code, and a reference to the visit; its id is
``dx-<encounter id>-<problem id>`` (it has no row id of its own). The problem list has no
"entered in error": a wrong problem is resolved or recoded, and its Condition says so.
"""

from __future__ import annotations

import re

from sqlalchemy import false, or_, select, true

from portal.charting.models import Encounter, Problem, encounter_problems
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

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"
CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORIES = {
    "problem-list-item": "Problem List Item",
    "encounter-diagnosis": "Encounter Diagnosis",
}
# The problem list's statuses are FHIR's own words.
CLINICAL_STATUS = {"active": "active", "resolved": "resolved", "inactive": "inactive"}
_DIAGNOSIS_ID = re.compile(r"^dx-(\d{1,10})-(\d{1,10})$")


def _code(row) -> dict:
    return concept(ICD10CM, row.icd10_code, row.description, row.description)


def _category_condition(criterion, category: str):
    """Every row of a source has the same category: the parameter keeps it all or none."""
    found = params.tokens(criterion, ("not",))
    hits = [
        token
        for token in found
        if token.system in (None, CATEGORY_SYSTEM) and token.code in (None, category)
    ]
    if criterion.modifier == "not":
        return false() if hits else true()
    return true() if hits else false()


def _common_condition(criterion, zone, created_column):
    if criterion.name == "code":
        match = params.code_in(Problem.icd10_code)
        return params.token_condition(criterion, {ICD10CM: match})
    if criterion.name == "clinical-status":
        return status_condition(criterion, Problem.status, CLINICAL_STATUS, CLINICAL_SYSTEM)
    if criterion.name == "onset-date":
        return params.date_condition(criterion, Problem.onset_date, zone=zone, day_column=True)
    if criterion.name == "recorded-date":
        return params.date_condition(criterion, created_column, zone=zone)
    return None


class Problems(Source):
    name = "p"
    key_columns = (Problem.id,)
    patient_column = Problem.patient_id
    changed_column = Problem.updated_at

    def select(self):
        return select(
            Problem.id,
            Problem.patient_id,
            Problem.icd10_code,
            Problem.description,
            Problem.onset_date,
            Problem.status,
            Problem.comment,
            Problem.created_at,
        )

    def id_condition(self, fhir_id):
        found = parse_id(fhir_id)
        return Problem.id == found if found is not None and str(found) == fhir_id else None

    def condition(self, criterion, zone):
        if criterion.name == "category":
            return _category_condition(criterion, "problem-list-item")
        if criterion.name == "encounter":
            params.reference_condition(criterion, Problem.id, "Encounter")  # checks the values
            return false()
        found = _common_condition(criterion, zone, Problem.created_at)
        return found if found is not None else super().condition(criterion, zone)

    def build(self, rows):
        return [
            (
                (row.id,),
                prune(
                    {
                        "resourceType": "Condition",
                        "id": str(row.id),
                        "clinicalStatus": concept(CLINICAL_SYSTEM, row.status),
                        "verificationStatus": concept(VERIFICATION_SYSTEM, "confirmed"),
                        "category": [
                            concept(
                                CATEGORY_SYSTEM,
                                "problem-list-item",
                                CATEGORIES["problem-list-item"],
                            )
                        ],
                        "code": _code(row),
                        "subject": reference("Patient", row.patient_id),
                        "onsetDateTime": row.onset_date.isoformat() if row.onset_date else None,
                        "recordedDate": instant(row.created_at),
                        "note": [{"text": row.comment}] if row.comment else None,
                    }
                ),
            )
            for row in rows
        ]


class Diagnoses(Source):
    name = "d"
    key_columns = (encounter_problems.c.encounter_id, encounter_problems.c.problem_id)
    patient_column = Encounter.patient_id
    changed_column = Encounter.created_at

    def select(self):
        return (
            select(
                encounter_problems.c.encounter_id,
                encounter_problems.c.problem_id,
                Encounter.patient_id,
                Encounter.occurred_at,
                Problem.icd10_code,
                Problem.description,
                Problem.onset_date,
                Problem.status,
            )
            .select_from(encounter_problems)
            .join(Encounter, Encounter.id == encounter_problems.c.encounter_id)
            .join(Problem, Problem.id == encounter_problems.c.problem_id)
        )

    def changed_since(self, since):
        # A diagnosis shows its problem's status and code: a change to either changes it.
        return or_(Encounter.created_at >= since, Problem.updated_at >= since)

    def id_condition(self, fhir_id):
        match = _DIAGNOSIS_ID.match(fhir_id)
        if match is None:
            return None
        encounter_id, problem_id = parse_id(match.group(1)), parse_id(match.group(2))
        if encounter_id is None or problem_id is None:
            return None
        return (encounter_problems.c.encounter_id == encounter_id) & (
            encounter_problems.c.problem_id == problem_id
        )

    def condition(self, criterion, zone):
        if criterion.name == "category":
            return _category_condition(criterion, "encounter-diagnosis")
        if criterion.name == "encounter":
            return params.reference_condition(
                criterion, encounter_problems.c.encounter_id, "Encounter"
            )
        found = _common_condition(criterion, zone, Encounter.occurred_at)
        return found if found is not None else super().condition(criterion, zone)

    def build(self, rows):
        return [
            (
                (row.encounter_id, row.problem_id),
                prune(
                    {
                        "resourceType": "Condition",
                        "id": f"dx-{row.encounter_id}-{row.problem_id}",
                        "clinicalStatus": concept(CLINICAL_SYSTEM, row.status),
                        "verificationStatus": concept(VERIFICATION_SYSTEM, "confirmed"),
                        "category": [
                            concept(
                                CATEGORY_SYSTEM,
                                "encounter-diagnosis",
                                CATEGORIES["encounter-diagnosis"],
                            )
                        ],
                        "code": _code(row),
                        "subject": reference("Patient", row.patient_id),
                        "encounter": reference("Encounter", row.encounter_id),
                        "onsetDateTime": row.onset_date.isoformat() if row.onset_date else None,
                        "recordedDate": instant(row.occurred_at),
                    }
                ),
            )
            for row in rows
        ]


class ConditionSpec(TableSpec):
    type = "Condition"
    care_date = "recorded-date"
    search_params = {
        "patient": "reference",
        "subject": "reference",
        "category": "token",
        "code": "token",
        "clinical-status": "token",
        "onset-date": "date",
        "recorded-date": "date",
        "encounter": "reference",
    }
    includes = {
        "Condition:patient": "Patient",
        "Condition:subject": "Patient",
        "Condition:encounter": "Encounter",
    }
    sources = (Problems(), Diagnoses())


RESOURCE_TYPES["Condition"] = ConditionSpec()

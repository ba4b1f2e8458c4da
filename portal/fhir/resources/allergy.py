"""AllergyIntolerance: the patient's allergies, and "no known allergies" (US Core
AllergyIntolerance).

"No known allergies" is a statement someone recorded (``no_known_allergies``): it is served
as an AllergyIntolerance coded SNOMED CT 716186003 "No known allergy", id ``nka-<patient
id>``. A patient nobody asked has neither an allergy nor that statement, and gets no
AllergyIntolerance at all: an empty list never means "no allergies".

An allergy marked entered in error is still served, with verificationStatus
``entered-in-error`` and no clinicalStatus (FHIR's rule ait-2), so that a system that copied it
learns it was wrong; a search by ``clinical-status`` leaves it out.
"""

from __future__ import annotations

import re

from sqlalchemy import false, select, true

from portal.audit.models import AuditEvent
from portal.charting.models import Allergy, NoKnownAllergies
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

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
SNOMED = "http://snomed.info/sct"
NO_KNOWN_ALLERGY = ("716186003", "No known allergy (situation)")
CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CATEGORY_OF_KIND = {
    "drug": "medication",
    "drug_class": "medication",
    "food": "food",
    "environmental": "environment",
}
KINDS_OF_CATEGORY = {"medication": ["drug", "drug_class"], "food": ["food"]}
KINDS_OF_CATEGORY["environment"] = ["environmental"]
CRITICALITY = {"low": "low", "high": "high", "unable_to_assess": "unable-to-assess"}
_NKA_ID = re.compile(r"^nka-(\d{1,10})$")


def _substance(row) -> dict:
    """The allergen: RxNorm for a coded drug ingredient, ATC for a drug class that has an
    ATC code, the words as typed otherwise."""
    if row.rxnorm_code:
        return concept(RXNORM, row.rxnorm_code, row.substance, row.substance)
    if row.drug_class_code and row.drug_class_code.startswith("ATC:"):
        return concept(ATC, row.drug_class_code[4:], row.substance, row.substance)
    return {"text": row.substance}


class Allergies(Source):
    name = "a"
    key_columns = (Allergy.id,)
    patient_column = Allergy.patient_id
    changed_column = Allergy.updated_at

    def select(self):
        return select(
            Allergy.id,
            Allergy.patient_id,
            Allergy.substance_kind,
            Allergy.substance,
            Allergy.rxnorm_code,
            Allergy.drug_class_code,
            Allergy.reactions,
            Allergy.severity,
            Allergy.criticality,
            Allergy.onset_date,
            Allergy.status,
            Allergy.comment,
            Allergy.created_at,
        )

    def id_condition(self, fhir_id):
        found = parse_id(fhir_id)
        return Allergy.id == found if found is not None and str(found) == fhir_id else None

    def condition(self, criterion, zone):
        name = criterion.name
        if name == "clinical-status":
            mapping = {"active": "active", "inactive": "inactive"}
            return status_condition(criterion, Allergy.status, mapping, CLINICAL_SYSTEM)
        if name == "verification-status":
            mapping = {"confirmed": ["active", "inactive"], "entered-in-error": "entered_in_error"}
            return status_condition(criterion, Allergy.status, mapping, VERIFICATION_SYSTEM)
        if name == "category":
            match = params.code_in(Allergy.substance_kind, KINDS_OF_CATEGORY)
            return params.token_condition(criterion, {None: match})
        if name == "criticality":
            mapping = {fhir: stored for stored, fhir in CRITICALITY.items()}
            match = params.code_in(Allergy.criticality, mapping)
            return params.token_condition(criterion, {None: match})
        if name == "code":
            return params.token_condition(
                criterion,
                {
                    RXNORM: params.code_in(Allergy.rxnorm_code),
                    ATC: lambda code: (
                        Allergy.drug_class_code == f"ATC:{code}"
                        if code
                        else Allergy.drug_class_code.like("ATC:%")
                    ),
                },
            )
        if name == "date":
            return params.date_condition(criterion, Allergy.created_at, zone=zone)
        return super().condition(criterion, zone)

    def build(self, rows):
        return [((row.id,), allergy_to_fhir(row)) for row in rows]


def allergy_to_fhir(row) -> dict:
    in_error = row.status == "entered_in_error"
    reactions = [{"text": text} for text in (row.reactions or []) if text]
    return prune(
        {
            "resourceType": "AllergyIntolerance",
            "id": str(row.id),
            "clinicalStatus": None if in_error else concept(CLINICAL_SYSTEM, row.status),
            "verificationStatus": concept(
                VERIFICATION_SYSTEM, "entered-in-error" if in_error else "confirmed"
            ),
            "category": [CATEGORY_OF_KIND[row.substance_kind]],
            "criticality": CRITICALITY.get(row.criticality) if row.criticality else None,
            "code": _substance(row),
            "patient": reference("Patient", row.patient_id),
            "onsetDateTime": row.onset_date.isoformat() if row.onset_date else None,
            "recordedDate": instant(row.created_at),
            "note": [{"text": row.comment}] if row.comment else None,
            "reaction": [prune({"manifestation": reactions, "severity": row.severity})]
            if reactions
            else None,
        }
    )


class NoKnownAllergyStatements(Source):
    name = "n"
    key_columns = (NoKnownAllergies.patient_id,)
    patient_column = NoKnownAllergies.patient_id
    changed_column = NoKnownAllergies.recorded_at

    def select(self):
        return select(NoKnownAllergies.patient_id, NoKnownAllergies.recorded_at)

    def id_condition(self, fhir_id):
        match = _NKA_ID.match(fhir_id)
        found = parse_id(match.group(1)) if match else None
        return NoKnownAllergies.patient_id == found if found is not None else None

    def gone(self, fhir_id):
        # The statement is one row per patient, deleted when an allergy is recorded: the
        # audit trail's "stated" event is what says it was served once (a statement
        # seeded without one answers 404). What the 410 tells a token that may read
        # AllergyIntolerance (the patient once had no known allergies) it could have read
        # while the statement stood.
        match = _NKA_ID.match(fhir_id)
        found = parse_id(match.group(1)) if match else None
        if found is None or f"nka-{found}" != fhir_id:
            return None
        return select(AuditEvent.id).where(
            AuditEvent.patient_id == found,
            AuditEvent.action == "allergy.nka_record",
            AuditEvent.outcome == "success",
        )

    def condition(self, criterion, zone):
        name = criterion.name
        if name == "clinical-status":
            match = params.code_in(NoKnownAllergies.patient_id, {"active": true()})
            return params.token_condition(criterion, {None: match, CLINICAL_SYSTEM: match})
        if name == "verification-status":
            match = params.code_in(NoKnownAllergies.patient_id, {"confirmed": true()})
            return params.token_condition(criterion, {None: match, VERIFICATION_SYSTEM: match})
        if name in ("category", "criticality"):
            return params.token_condition(criterion, {None: lambda code: false()})
        if name == "code":
            match = params.code_in(NoKnownAllergies.patient_id, {NO_KNOWN_ALLERGY[0]: true()})
            return params.token_condition(criterion, {SNOMED: match})
        if name == "date":
            return params.date_condition(criterion, NoKnownAllergies.recorded_at, zone=zone)
        return super().condition(criterion, zone)

    def build(self, rows):
        code, display = NO_KNOWN_ALLERGY
        return [
            (
                (row.patient_id,),
                {
                    "resourceType": "AllergyIntolerance",
                    "id": f"nka-{row.patient_id}",
                    "clinicalStatus": concept(CLINICAL_SYSTEM, "active"),
                    "verificationStatus": concept(VERIFICATION_SYSTEM, "confirmed"),
                    "code": concept(SNOMED, code, display, "No known allergies"),
                    "patient": reference("Patient", row.patient_id),
                    "recordedDate": instant(row.recorded_at),
                },
            )
            for row in rows
        ]


class AllergyIntoleranceSpec(TableSpec):
    type = "AllergyIntolerance"
    search_params = {
        "patient": "reference",
        "clinical-status": "token",
        "verification-status": "token",
        "category": "token",
        "criticality": "token",
        "code": "token",
        "date": "date",
    }
    includes = {"AllergyIntolerance:patient": "Patient"}
    patient_params = ("patient",)
    sources = (Allergies(), NoKnownAllergyStatements())


RESOURCE_TYPES["AllergyIntolerance"] = AllergyIntoleranceSpec()

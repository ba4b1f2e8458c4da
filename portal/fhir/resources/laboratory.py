"""Lab results as FHIR (US Core Laboratory Result Observation and DiagnosticReport for
Laboratory Results Reporting), read from the labs' tables (``portal/labs/models.py``).

- **Observation** ``lab-<result id>``: one per current result (an OBX), category
  ``laboratory``, coded in LOINC when the lab sent a LOINC code (else the lab's own code with
  the name as text), the value as a UCUM quantity (numbers, and ``<5``-style structured
  numbers with their comparator), as text, or as a coded concept's text; the reference range
  as low/high when it reads as numbers ("3.5-5.1", "<200", ">39"), else as text; the HL7
  abnormal flag (OBX-8, table 0078) as FHIR's interpretation (v3 ObservationInterpretation,
  which took over table 0078's codes); the status from OBX-11 as the labs store it
  (P preliminary, F final, C corrected, X cancelled). It is one of ``ObservationSpec``'s
  sources, beside the vital signs.
- **DiagnosticReport** ``lab-<order test id>``: one per ordered test (the OBR of an order)
  that has results: its LOINC code, the order's patient and encounter, its current results,
  when they were taken (the earliest) and issued (the latest received), the performing lab,
  and a status from its results' (any preliminary: ``preliminary``; else any corrected:
  ``corrected``; all cancelled: ``cancelled``; else ``final``).

Served: results attached to a patient (a result waiting in the unmatched queue belongs to
nobody yet) that no later result replaced: a correction replaces the row it corrects (the
labs keep the history, ``supersedes_id``), and FHIR gets the current one. Results that came
without an order of ours (no ordered test to report them under) are Observations only.
"""

from __future__ import annotations

import re

from sqlalchemy import and_, exists, func, not_, select, true

from portal.extensions import db
from portal.fhir import params
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.resources.base import (
    Source,
    TableSpec,
    instant,
    status_condition,
)
from portal.ids import parse_id
from portal.labs.models import LabOrder, LabOrderTest, LabResult
from portal.terminology.lab_units import is_ucum

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
OBSERVATION_STATUS_SYSTEM = "http://hl7.org/fhir/observation-status"
REPORT_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0074"
REPORT_STATUS_SYSTEM = "http://hl7.org/fhir/diagnostic-report-status"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

# OBX-11 as the labs store it -> Observation.status.
OBSERVATION_STATUS = {"P": "preliminary", "F": "final", "C": "corrected", "X": "cancelled"}
STORED_STATUS = {fhir: stored for stored, fhir in OBSERVATION_STATUS.items()}
# HL7 v2 table 0078 (OBX-8) -> v3 ObservationInterpretation: the same codes; their names.
INTERPRETATIONS = {
    "L": "Low",
    "H": "High",
    "LL": "Critical low",
    "HH": "Critical high",
    "<": "Off scale low",
    ">": "Off scale high",
    "N": "Normal",
    "A": "Abnormal",
    "AA": "Critical abnormal",
    "U": "Significant change up",
    "D": "Significant change down",
    "B": "Better",
    "W": "Worse",
    "S": "Susceptible",
    "R": "Resistant",
    "I": "Intermediate",
}
_LABORATORY = [
    {"coding": [{"system": CATEGORY_SYSTEM, "code": "laboratory", "display": "Laboratory"}]}
]
_REPORT_CATEGORY = [
    {"coding": [{"system": REPORT_CATEGORY_SYSTEM, "code": "LAB", "display": "Laboratory"}]}
]
_UNKNOWN = {"coding": [{"system": ABSENT_SYSTEM, "code": "unknown", "display": "Unknown"}]}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*-\s*({_NUMBER})\s*$")
_BOUND = re.compile(rf"^\s*(<=|>=|<|>)\s*({_NUMBER})\s*$")
_COMPARATOR = re.compile(rf"^(<=|>=|<|>)({_NUMBER})$")
_LAB_ID = re.compile(r"^lab-(\d{1,10})$")


def _lab_row_id(fhir_id: str) -> int | None:
    match = _LAB_ID.match(fhir_id)
    found = parse_id(match.group(1)) if match else None
    return found if found is not None and f"lab-{found}" == fhir_id else None


def _current():
    """Results a patient has and nothing replaced."""
    return and_(LabResult.patient_id.is_not(None), LabResult.superseded_at.is_(None))


def _number(text: str):
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _quantity(value, units: str | None) -> dict:
    found = {"value": value}
    if units:
        found["unit"] = units
        if is_ucum(units):
            found["system"] = UCUM
            found["code"] = units
    return found


def _value(row) -> tuple[str, object] | None:
    """(the value[x] element's name, its value), or None when the result has no value."""
    if row.value_type in ("NM", "SN") and row.value_numeric is not None:
        return "valueQuantity", _quantity(row.value_numeric, row.units)
    text = (row.value_text or "").strip()
    if not text:
        return None
    if row.value_type == "SN":
        compared = _COMPARATOR.match(text.replace(" ", ""))
        if compared is not None:
            quantity = _quantity(_number(compared.group(2)), row.units)
            return "valueQuantity", {"comparator": compared.group(1), **quantity}
    if row.value_type in ("CE", "CWE"):
        return "valueCodeableConcept", {"text": text}
    return "valueString", text


def _reference_range(text: str | None, units: str | None) -> list[dict] | None:
    if not text:
        return None
    found = _RANGE.match(text)
    if found is not None:
        low, high = (_number(found.group(n)) for n in (1, 2))
        return [{"low": _quantity(low, units), "high": _quantity(high, units), "text": text}]
    found = _BOUND.match(text)
    if found is not None:
        side = "high" if found.group(1).startswith("<") else "low"
        return [{side: _quantity(_number(found.group(2)), units), "text": text}]
    return [{"text": text}]


def _interpretation(flag: str | None) -> list[dict] | None:
    if not flag:
        return None
    name = INTERPRETATIONS.get(flag)
    if name is None:  # a flag outside table 0078: kept as the lab wrote it
        return [{"text": flag}]
    return [{"coding": [{"system": INTERPRETATION_SYSTEM, "code": flag, "display": name}]}]


def _code(row) -> dict:
    if row.loinc:
        return {
            "coding": [{"system": LOINC, "code": row.loinc, "display": row.name}],
            "text": row.name,
        }
    return {"coding": [{"code": row.code, "display": row.name}], "text": row.name}


def result_to_fhir(row) -> dict:
    """One current lab result (a row of ``LabResults.select()``) as an Observation."""
    resource = {
        "resourceType": "Observation",
        "id": f"lab-{row.id}",
        "status": OBSERVATION_STATUS.get(row.status, "unknown"),
        "category": _LABORATORY,
        "code": _code(row),
        "subject": {"reference": f"Patient/{row.patient_id}"},
    }
    if row.encounter_id is not None:
        resource["encounter"] = {"reference": f"Encounter/{row.encounter_id}"}
    if row.observed_at is not None:
        resource["effectiveDateTime"] = instant(row.observed_at)
    resource["issued"] = instant(row.received_at)
    if row.performing_lab:
        resource["performer"] = [{"display": row.performing_lab}]
    value = _value(row)
    if value is not None:
        resource[value[0]] = value[1]
    elif row.status != "X":
        resource["dataAbsentReason"] = _UNKNOWN
    interpretation = _interpretation(row.abnormal_flag)
    if interpretation:
        resource["interpretation"] = interpretation
    if row.notes:
        resource["note"] = [{"text": row.notes}]
    reference_range = _reference_range(row.reference_range, row.units)
    if reference_range:
        resource["referenceRange"] = reference_range
    return resource


class LabResults(Source):
    """The ``laboratory`` Observations: one per current lab result."""

    name = "l"
    key_columns = (LabResult.id,)
    patient_column = LabResult.patient_id
    # A result's row never changes after filing but for its review and its replacement
    # (which is a new row, received then).
    changed_column = LabResult.received_at

    def select(self):
        return (
            select(
                LabResult.id,
                LabResult.patient_id,
                LabOrder.encounter_id,
                LabResult.loinc,
                LabResult.code,
                LabResult.name,
                LabResult.value_type,
                LabResult.value_text,
                LabResult.value_numeric,
                LabResult.units,
                LabResult.reference_range,
                LabResult.abnormal_flag,
                LabResult.status,
                LabResult.observed_at,
                LabResult.received_at,
                LabResult.performing_lab,
                LabResult.notes,
            )
            .select_from(LabResult)
            .outerjoin(LabOrder, LabOrder.id == LabResult.order_id)
            .where(_current())
        )

    def id_condition(self, fhir_id):
        found = _lab_row_id(fhir_id)
        return LabResult.id == found if found is not None else None

    def gone(self, fhir_id):
        # Served once (attached to a patient), then replaced by a correction.
        found = _lab_row_id(fhir_id)
        if found is None:
            return None
        return select(LabResult.id).where(
            LabResult.id == found,
            LabResult.patient_id.is_not(None),
            LabResult.superseded_at.is_not(None),
        )

    def condition(self, criterion, zone):
        name = criterion.name
        if name == "date":
            return params.date_condition(criterion, LabResult.observed_at, zone=zone)
        if name == "category":
            match = params.code_in(LabResult.id, {"laboratory": true()})
            return params.token_condition(criterion, {CATEGORY_SYSTEM: match})
        if name == "status":
            return status_condition(
                criterion, LabResult.status, STORED_STATUS, OBSERVATION_STATUS_SYSTEM
            )
        if name == "code":
            return params.token_condition(criterion, {LOINC: params.code_in(LabResult.loinc)})
        if name == "encounter":
            return params.reference_condition(criterion, LabOrder.encounter_id, "Encounter")
        return super().condition(criterion, zone)

    def build(self, rows):
        return [((row.id,), result_to_fhir(row)) for row in rows]


# --- DiagnosticReport ---------------------------------------------------------------------


def _results_of_test(*conditions):
    """EXISTS: a current result of the ordered test (the outer query's row) meeting
    ``conditions``."""
    return exists().where(LabResult.order_test_id == LabOrderTest.id, _current(), *conditions)


_EFFECTIVE = (
    select(func.min(LabResult.observed_at))
    .where(LabResult.order_test_id == LabOrderTest.id, _current())
    .correlate(LabOrderTest)
    .scalar_subquery()
)
# A report's status from its results' (the order of the tests matters: see the module).
REPORT_STATUS = {
    "preliminary": _results_of_test(LabResult.status == "P"),
    "corrected": and_(
        not_(_results_of_test(LabResult.status == "P")),
        _results_of_test(LabResult.status == "C"),
    ),
    "cancelled": not_(_results_of_test(LabResult.status != "X")),
    "final": and_(
        not_(_results_of_test(LabResult.status.in_(("P", "C")))),
        _results_of_test(LabResult.status == "F"),
    ),
}


def report_status(statuses: list[str]) -> str:
    """The report's status from its results' stored statuses (as ``REPORT_STATUS``)."""
    if "P" in statuses:
        return "preliminary"
    if "C" in statuses:
        return "corrected"
    if all(status == "X" for status in statuses):
        return "cancelled"
    return "final"


class OrderedTests(Source):
    """One DiagnosticReport per ordered test with current results."""

    name = "t"
    key_columns = (LabOrderTest.id,)
    patient_column = LabOrder.patient_id
    changed_column = LabOrderTest.id  # unused: ``changed_since`` reads the results

    def changed_since(self, since):
        return _results_of_test(LabResult.received_at >= since)

    def select(self):
        return (
            select(
                LabOrderTest.id,
                LabOrderTest.loinc,
                LabOrderTest.name,
                LabOrder.patient_id,
                LabOrder.encounter_id,
                LabOrder.placer_order_number,
            )
            .select_from(LabOrderTest)
            .join(LabOrder, LabOrder.id == LabOrderTest.order_id)
            .where(_results_of_test())
        )

    def id_condition(self, fhir_id):
        found = _lab_row_id(fhir_id)
        return LabOrderTest.id == found if found is not None else None

    def gone(self, fhir_id):
        # A report is served while its test has a current result; a test with results
        # attached to a patient once, none current now (each replaced by a correction
        # filed elsewhere), was served and no longer is.
        found = _lab_row_id(fhir_id)
        if found is None:
            return None
        return select(LabResult.id).where(
            LabResult.order_test_id == found, LabResult.patient_id.is_not(None)
        )

    def condition(self, criterion, zone):
        name = criterion.name
        if name == "date":
            return params.date_condition(criterion, _EFFECTIVE, zone=zone)
        if name == "category":
            match = params.code_in(LabOrderTest.id, {"LAB": true()})
            return params.token_condition(criterion, {REPORT_CATEGORY_SYSTEM: match})
        if name == "status":
            return status_condition(criterion, LabOrderTest.id, REPORT_STATUS, REPORT_STATUS_SYSTEM)
        if name == "code":
            return params.token_condition(criterion, {LOINC: params.code_in(LabOrderTest.loinc)})
        if name == "encounter":
            return params.reference_condition(criterion, LabOrder.encounter_id, "Encounter")
        return super().condition(criterion, zone)

    def build(self, rows):
        if not rows:
            return []
        results: dict[int, list] = {row.id: [] for row in rows}
        # The chunk's results in one query, never one per report.
        for result in db.session.execute(
            select(
                LabResult.id,
                LabResult.order_test_id,
                LabResult.status,
                LabResult.observed_at,
                LabResult.received_at,
                LabResult.performing_lab,
            )
            .where(LabResult.order_test_id.in_(list(results)), _current())
            .order_by(LabResult.id)
        ):
            results[result.order_test_id].append(result)
        return [((row.id,), report_to_fhir(row, results[row.id])) for row in rows]


def report_to_fhir(row, results: list) -> dict:
    """One ordered test and its current results as a DiagnosticReport."""
    observed = [result.observed_at for result in results if result.observed_at is not None]
    labs = sorted({result.performing_lab for result in results if result.performing_lab})
    resource = {
        "resourceType": "DiagnosticReport",
        "id": f"lab-{row.id}",
        "identifier": [{"use": "usual", "value": f"{row.placer_order_number}-{row.loinc}"}],
        "status": report_status([result.status for result in results]),
        "category": _REPORT_CATEGORY,
        "code": {
            "coding": [{"system": LOINC, "code": row.loinc, "display": row.name}],
            "text": row.name,
        },
        "subject": {"reference": f"Patient/{row.patient_id}"},
    }
    if row.encounter_id is not None:
        resource["encounter"] = {"reference": f"Encounter/{row.encounter_id}"}
    if observed:
        resource["effectiveDateTime"] = instant(min(observed))
    resource["issued"] = instant(max(result.received_at for result in results))
    if labs:
        resource["performer"] = [{"display": lab} for lab in labs]
    resource["result"] = [{"reference": f"Observation/lab-{result.id}"} for result in results]
    return resource


class DiagnosticReportSpec(TableSpec):
    type = "DiagnosticReport"
    search_params = {
        "patient": "reference",
        "subject": "reference",
        "category": "token",
        "code": "token",
        "date": "date",
        "status": "token",
        "encounter": "reference",
    }
    includes = {
        "DiagnosticReport:patient": "Patient",
        "DiagnosticReport:subject": "Patient",
        "DiagnosticReport:encounter": "Encounter",
        "DiagnosticReport:result": "Observation",
    }
    sources = (OrderedTests(),)


RESOURCE_TYPES["DiagnosticReport"] = DiagnosticReportSpec()

"""Observation: vital signs (FHIR vital signs profile, US Core Vital Signs), one Observation
per measurement of a set, and lab results (category ``laboratory``: ``laboratory.py``, a
second source read after the vital signs).

A set of vital signs is one row; each measurement taken is one Observation with the id
``<set id>-<part>`` (``123-bp``, ``123-hr``...), LOINC-coded, in the UCUM unit the chart
stores it in (the chart keeps canonical units: mm[Hg], /min, Cel, kg, cm, kg/m2, %). Blood
pressure is one panel (85354-9) with the systolic and diastolic values as components. Oxygen
saturation carries both LOINC codes US Core asks for (2708-6 and 59408-5). The pain score is
not a vital sign in FHIR's profile and is not served here.

A set marked entered in error is served with status ``entered-in-error`` (FHIR's status for
it), so that a copy elsewhere can be withdrawn; other sets are ``final``.

Bulk export's ``_since`` reads when the set was recorded: the table keeps no time of the
marking, so a set marked entered in error after an export reaches the next full export,
not an export since then (the audit trail holds when it was marked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import case, false, func, or_, select, true

from portal.charting.models import VitalSigns
from portal.extensions import db
from portal.fhir import params
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.resources.base import (
    Source,
    TableSpec,
    concept,
    instant,
    status_condition,
)
from portal.fhir.resources.laboratory import LabResults
from portal.ids import parse_id

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
STATUS_SYSTEM = "http://hl7.org/fhir/observation-status"
VITAL_SIGNS = concept(CATEGORY_SYSTEM, "vital-signs", "Vital Signs")


@dataclass(frozen=True)
class Measurement:
    """One kind of measurement of a set: its id suffix, LOINC code(s), column and unit."""

    part: str
    codes: tuple[tuple[str, str], ...]  # (LOINC code, display), the first is the main one
    text: str
    column: object
    unit: str  # UCUM code
    unit_text: str


SYSTOLIC = ("8480-6", "Systolic blood pressure")
DIASTOLIC = ("8462-4", "Diastolic blood pressure")
MEASUREMENTS = (
    Measurement(
        "bp",
        (("85354-9", "Blood pressure panel with all children optional"),),
        "Blood pressure",
        None,
        "mm[Hg]",
        "mmHg",
    ),
    Measurement(
        "hr",
        (("8867-4", "Heart rate"),),
        "Heart rate",
        VitalSigns.heart_rate_per_min,
        "/min",
        "beats/minute",
    ),
    Measurement(
        "rr",
        (("9279-1", "Respiratory rate"),),
        "Respiratory rate",
        VitalSigns.respiratory_rate_per_min,
        "/min",
        "breaths/minute",
    ),
    Measurement(
        "temp",
        (("8310-5", "Body temperature"),),
        "Temperature",
        VitalSigns.temperature_cel,
        "Cel",
        "C",
    ),
    Measurement(
        "spo2",
        (
            ("2708-6", "Oxygen saturation in Arterial blood"),
            ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        ),
        "Oxygen saturation",
        VitalSigns.spo2_percent,
        "%",
        "%",
    ),
    Measurement(
        "weight", (("29463-7", "Body weight"),), "Weight", VitalSigns.weight_kg, "kg", "kg"
    ),
    Measurement("height", (("8302-2", "Body height"),), "Height", VitalSigns.height_cm, "cm", "cm"),
    Measurement(
        "bmi",
        (("39156-5", "Body mass index (BMI) [Ratio]"),),
        "BMI",
        VitalSigns.bmi,
        "kg/m2",
        "kg/m2",
    ),
    Measurement(
        "head",
        (("9843-4", "Head Occipital-frontal circumference"),),
        "Head circumference",
        VitalSigns.head_circumference_cm,
        "cm",
        "cm",
    ),
)
PART_NUMBER = {measurement.part: number for number, measurement in enumerate(MEASUREMENTS)}
_ID = re.compile(r"^(\d{1,10})-([a-z0-9]+)$")
_BP_TAKEN = or_(VitalSigns.systolic_mmhg.is_not(None), VitalSigns.diastolic_mmhg.is_not(None))


def taken(measurement: Measurement):
    """SQL: the set has this measurement."""
    return _BP_TAKEN if measurement.column is None else measurement.column.is_not(None)


def _measurements_coded(code: str | None) -> list[Measurement]:
    return [
        measurement
        for measurement in MEASUREMENTS
        if code is None or any(code == loinc for loinc, _display in measurement.codes)
    ]


def _quantity(value, unit: str, unit_text: str) -> dict:
    return {"value": value, "unit": unit_text, "system": UCUM, "code": unit}


class VitalSets(Source):
    name = "v"
    key_columns = (VitalSigns.id,)
    patient_column = VitalSigns.patient_id
    changed_column = VitalSigns.created_at
    parts_per_row = True

    def select(self):
        # ``build`` reads the row as a tuple in this order: the value columns in the order
        # of ``MEASUREMENTS``.
        return select(
            VitalSigns.id,
            VitalSigns.patient_id,
            VitalSigns.encounter_id,
            VitalSigns.taken_at,
            VitalSigns.systolic_mmhg,
            VitalSigns.diastolic_mmhg,
            *(measurement.column for measurement in MEASUREMENTS if measurement.column is not None),
            VitalSigns.entered_in_error,
        )

    def id_condition(self, fhir_id):
        match = _ID.match(fhir_id)
        if match is None or match.group(2) not in PART_NUMBER:
            return None
        found = parse_id(match.group(1))
        return (
            VitalSigns.id == found if found is not None and str(found) == match.group(1) else None
        )

    def condition(self, criterion, zone):
        name = criterion.name
        if name == "date":
            return params.date_condition(criterion, VitalSigns.taken_at, zone=zone)
        if name == "category":
            match = params.code_in(VitalSigns.id, {"vital-signs": true()})
            return params.token_condition(criterion, {CATEGORY_SYSTEM: match})
        if name == "status":
            mapping = {
                "final": VitalSigns.entered_in_error.is_(False),
                "entered-in-error": VitalSigns.entered_in_error.is_(True),
            }
            return status_condition(criterion, VitalSigns.id, mapping, STATUS_SYSTEM)
        if name == "code":
            # Rows with at least one matching measurement; ``keep`` picks the parts.
            def match(code):
                return or_(false(), *(taken(found) for found in _measurements_coded(code)))

            condition = params.token_condition(criterion, {LOINC: match})
            # code:not=X still wants the other measurements of a set that has X: only
            # ``keep`` can leave X out.
            return true() if criterion.modifier == "not" else condition
        if name == "encounter":
            return params.reference_condition(criterion, VitalSigns.encounter_id, "Encounter")
        return super().condition(criterion, zone)

    def keep(self, criteria, resource, zone):
        for criterion in criteria:
            if criterion.name == "_id" and resource["id"] not in params.id_values(criterion):
                return False
            if criterion.name == "code":
                codings = [
                    (coding["system"], coding["code"]) for coding in resource["code"]["coding"]
                ]
                if not params.token_matches(criterion, codings):
                    return False
        return True

    def count(self, conditions, criteria):
        """Measurements, not sets: one count per kind, of the sets that have it, added up."""
        if any(criterion.name == "_id" for criterion in criteria):
            # A few ids: count what a search finds.
            return sum(1 for _found in self.scan(conditions, None, 1000, criteria))
        wanted = list(MEASUREMENTS)
        for criterion in criteria:
            if criterion.name == "code":
                wanted = [
                    measurement
                    for measurement in wanted
                    if params.token_matches(
                        criterion, [(LOINC, loinc) for loinc, _display in measurement.codes]
                    )
                ]
        if not wanted:
            return 0
        totals = [
            func.count(case((taken(measurement), 1))).label(measurement.part)
            for measurement in wanted
        ]
        statement = select(*totals).select_from(VitalSigns).where(*conditions)
        return sum(value or 0 for value in db.session.execute(statement).one())

    def build(self, rows):
        """Every measurement of every set. Export reads millions of these and a long
        record tens of thousands, so the parts all of a set's Observations share (subject,
        encounter, time, and each kind's code and unit) are made once and shared
        (resources are read, serialised and dropped, never changed in place), and a row is
        read as the tuple it is, in ``select()``'s order, not column by column."""
        built = []
        append = built.append
        for row in rows:
            (row_id, patient_id, encounter_id, taken_at, systolic, diastolic, *values) = row
            in_error = values.pop()
            status = "entered-in-error" if in_error else "final"
            subject = {"reference": f"Patient/{patient_id}"}
            encounter = {"reference": f"Encounter/{encounter_id}"} if encounter_id else None
            effective = instant(taken_at)
            if systolic is not None or diastolic is not None:
                resource = {
                    "resourceType": "Observation",
                    "id": f"{row_id}-bp",
                    "status": status,
                    "category": _CATEGORY,
                    "code": _BP_CODE,
                    "subject": subject,
                    "effectiveDateTime": effective,
                    "component": [
                        {"code": component_code, "valueQuantity": _quantity(value, *_MM_HG)}
                        for component_code, value in (
                            (_SYSTOLIC_CODE, systolic),
                            (_DIASTOLIC_CODE, diastolic),
                        )
                        if value is not None
                    ],
                }
                if encounter is not None:
                    resource["encounter"] = encounter
                append(((row_id, 0), resource))
            for (number, part, code, unit_text, unit), value in zip(
                _VALUE_PLAN, values, strict=True
            ):
                if value is None:
                    continue
                resource = {
                    "resourceType": "Observation",
                    "id": f"{row_id}-{part}",
                    "status": status,
                    "category": _CATEGORY,
                    "code": code,
                    "subject": subject,
                    "effectiveDateTime": effective,
                    "valueQuantity": {
                        "value": value,
                        "unit": unit_text,
                        "system": UCUM,
                        "code": unit,
                    },
                }
                if encounter is not None:
                    resource["encounter"] = encounter
                append(((row_id, number), resource))
        return built


def _code_of(measurement: Measurement) -> dict:
    return {
        "coding": [
            {"system": LOINC, "code": code, "display": display}
            for code, display in measurement.codes
        ],
        "text": measurement.text,
    }


_PLAN = tuple(
    (number, measurement, _code_of(measurement)) for number, measurement in enumerate(MEASUREMENTS)
)
_CATEGORY = [VITAL_SIGNS]
_BP_CODE = _PLAN[0][2]
_MM_HG = ("mm[Hg]", "mmHg")
# The measurements with one value each, in the order ``select()`` reads their columns
# (after the two blood pressure columns): (part number, id suffix, code, unit text, unit).
_VALUE_PLAN = tuple(
    (number, measurement.part, code, measurement.unit_text, measurement.unit)
    for number, measurement, code in _PLAN
    if measurement.column is not None
)
_SYSTOLIC_CODE = concept(LOINC, *SYSTOLIC)
_DIASTOLIC_CODE = concept(LOINC, *DIASTOLIC)


def to_fhir(row, measurement: Measurement) -> dict | None:
    """The Observation of one measurement of a set, or None when it was not taken."""
    number = PART_NUMBER[measurement.part]
    for key, resource in VitalSets().build([row]):
        if key[1] == number:
            return resource
    return None


class ObservationSpec(TableSpec):
    type = "Observation"
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
        "Observation:patient": "Patient",
        "Observation:subject": "Patient",
        "Observation:encounter": "Encounter",
    }
    sources = (VitalSets(), LabResults())


RESOURCE_TYPES["Observation"] = ObservationSpec()

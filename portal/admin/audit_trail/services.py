"""What the audit report shows of patients: their names and MRNs, never internal ids alone.

An administrator reading the trail needs to know whose record was opened ("who looked at
Ada Lovelace's chart?"), so the report names the patients on the page it shows and lets the
admin pick a patient by name or MRN. Both are reads of patient data: the names ride on the
report view's own event (which names the patient filter), and a lookup is the registry's
audited search.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from portal.extensions import db
from portal.patients.identifiers import search_key
from portal.patients.models import Patient, format_display_name


@dataclass(frozen=True)
class PatientLabel:
    """How the report names a patient."""

    id: int
    name: str
    mrn: str


def patient_labels(patient_ids) -> dict[int, PatientLabel]:
    """Names and MRNs of these patients (one query on the primary key; unknown ids left out)."""
    ids = sorted({patient_id for patient_id in patient_ids if patient_id is not None})
    if not ids:
        return {}
    rows = db.session.execute(
        select(
            Patient.id, Patient.family_name, Patient.given_name, Patient.preferred_name, Patient.mrn
        ).where(Patient.id.in_(ids))
    )
    return {
        row.id: PatientLabel(
            row.id,
            format_display_name(row.family_name, row.given_name, row.preferred_name),
            row.mrn,
        )
        for row in rows
    }


def exactly_named(patients, typed: str) -> list:
    """The patients the admin named exactly: by MRN, or by family name (with the given name
    when one was typed), in either order, with or without a comma.

    The lookup exists to filter the trail on a patient the admin already knows of. The
    registry's search is broader (prefixes, a given name alone, near misses) and would let an
    administrator, who has no patient access, browse the registry; only exact names pass.
    """
    text = typed.strip()
    words = set(search_key(text.replace(",", " ")).split())
    chosen = []
    for patient in patients:
        family = set(search_key(patient.family_name).split())
        given = set(search_key(patient.given_name).split())
        named = family <= words and (words <= family or words <= family | given)
        if patient.mrn == text or (family and named):
            chosen.append(patient)
    return chosen

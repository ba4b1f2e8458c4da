"""The after-visit summary: what the patient takes home, distinct from the clinician's visit
summary.

It says, in a patient's words, what was done at the visit, the diagnoses (plain names, not
codes), the vital signs measured, the medication list with what changed today (new, changed,
stopped), the allergies on file and the next appointment. It carries no note: neither the
provider's note (written for clinicians) nor the nursing notes (internal), so it can be
printed at checkout, before the note is signed.

It is built on the visit summary's own reads (``load_visit_summary``: the encounter, its
vital signs and immunizations), so both always agree on what belongs to the visit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from portal.audit import services as audit
from portal.charting.lists.services import AllergyState, allergy_state
from portal.charting.models import (
    ENCOUNTER_KINDS,
    ChartItemRevision,
    Medication,
    MedicationReconciliation,
)
from portal.charting.summary.after_visit_pdf import render_after_visit_pdf
from portal.charting.summary.services import (
    VISIT_SUMMARY_CATEGORY,
    VisitSummary,
    load_visit_summary,
    upcoming_appointments,
)
from portal.clinic.clock import clinic_zone
from portal.extensions import db
from portal.terminology.plain_language import plain_diagnosis
from portal.transaction import use_case

# What a medication line says about today (None: taken as before).
CHANGE_LABELS = {"new": "New", "changed": "Changed", "stopped": "Stop taking"}
_MEDICATION_FIELDS = ("dose", "route", "frequency")


@dataclass
class MedicationLine:
    """One medication as the patient reads it, with what changed at this visit."""

    drug: str
    how: str  # "10 mg, by mouth, once daily"
    change: str | None = None  # a key of CHANGE_LABELS
    was: str | None = None  # for a change: how it was taken before


@dataclass
class AfterVisitSummary:
    """Everything the patient's copy shows."""

    visit: VisitSummary
    diagnoses: list[tuple[str, str]]  # (plain name, code), the code for anyone who asks
    medications: list[MedicationLine]  # to take from now on, new and changed first
    stopped: list[MedicationLine]
    allergies: AllergyState
    next_appointment: object | None  # a row of upcoming_appointments, or None
    done: list[str] = field(default_factory=list)  # "What we did today", one line each

    @property
    def patient(self):
        return self.visit.patient

    @property
    def encounter(self):
        return self.visit.encounter


def _how(values: dict) -> str:
    return ", ".join(str(values[name]) for name in _MEDICATION_FIELDS if values.get(name))


def _local_day(value: datetime):
    return value.astimezone(clinic_zone()).date()


def _medication_lines(visit: VisitSummary) -> tuple[list[MedicationLine], list[MedicationLine]]:
    """The active list with today's changes, and what was stopped today.

    "Changed" and "stopped" are this visit's reconciliation decisions; "new" is a medication
    added to the list on the visit's day (the list has no link to the encounter that added
    it, and a medication started by phone the same day is news to the patient too).
    """
    encounter = visit.encounter
    decisions: dict[int, MedicationReconciliation] = {}
    for decision in db.session.scalars(
        select(MedicationReconciliation)
        .where(MedicationReconciliation.encounter_id == encounter.id)
        .order_by(MedicationReconciliation.recorded_at, MedicationReconciliation.id)
    ):
        decisions[decision.medication_id] = decision
    medications = db.session.scalars(
        select(Medication)
        .where(
            Medication.patient_id == encounter.patient_id,
            (Medication.status == "active") | Medication.id.in_(decisions),
        )
        .order_by(Medication.drug, Medication.id)
    )
    visit_day = _local_day(encounter.occurred_at)
    current, stopped = [], []
    for medication in medications:
        how = _how({name: getattr(medication, name) for name in _MEDICATION_FIELDS})
        decision = decisions.get(medication.id)
        if medication.status == "entered_in_error":
            continue
        if medication.status == "stopped":
            if decision is not None and decision.action == "stop":
                stopped.append(MedicationLine(medication.drug, how, "stopped"))
            continue
        line = MedicationLine(medication.drug, how)
        if decision is not None and decision.action == "change":
            line.change = "changed"
            line.was = _how_before(medication, decision)
        elif _local_day(medication.created_at) == visit_day:
            line.change = "new"
        current.append(line)
    current.sort(key=lambda line: (line.change is None, line.drug.lower()))
    return current, stopped


def _how_before(medication: Medication, decision: MedicationReconciliation) -> str | None:
    """How the medication was taken before a "change" decision: the revision written with
    the decision (same medication, at or after the decision's time) names the old values of
    the fields it changed; the others are as they are now."""
    revision = db.session.scalar(
        select(ChartItemRevision)
        .where(
            ChartItemRevision.item_type == "medication",
            ChartItemRevision.item_id == medication.id,
            ChartItemRevision.changed_at >= decision.recorded_at,
            ChartItemRevision.before.is_not(None),
        )
        .order_by(ChartItemRevision.id)
        .limit(1)
    )
    if revision is None:
        return None
    now = {name: getattr(medication, name) for name in _MEDICATION_FIELDS}
    return _how({**now, **(revision.before or {})}) or None


def _what_was_done(visit: VisitSummary) -> list[str]:
    encounter = visit.encounter
    kind = ENCOUNTER_KINDS.get(encounter.kind, encounter.kind)
    done = [f"{kind} with {encounter.provider.full_name}"]
    if encounter.chief_complaint:
        done.append(f"Reason for the visit: {encounter.chief_complaint}")
    if visit.vitals:
        done.append("We measured your vital signs (below).")
    for row in visit.immunizations:
        if row.refused:
            done.append(f"Vaccine offered and declined: {row.vaccine}")
        else:
            done.append(f"Vaccine given: {row.vaccine}")
    return done


def load_after_visit_summary(actor, encounter_id: int) -> AfterVisitSummary:
    """The patient's copy of one encounter (404 unless its patient is visible to ``actor``)."""
    visit = load_visit_summary(actor, encounter_id)
    encounter = visit.encounter
    diagnoses = [
        (plain_diagnosis(problem.icd10_code, problem.description), problem.icd10_code)
        for problem in sorted(encounter.problems_addressed, key=lambda p: p.icd10_code)
    ]
    medications, stopped = _medication_lines(visit)
    upcoming = upcoming_appointments(encounter.patient_id, limit=1)
    return AfterVisitSummary(
        visit=visit,
        diagnoses=diagnoses,
        medications=medications,
        stopped=stopped,
        allergies=allergy_state(encounter.patient_id),
        next_appointment=upcoming[0] if upcoming else None,
        done=_what_was_done(visit),
    )


def view_after_visit_summary(actor, encounter_id: int) -> AfterVisitSummary:
    """The print view of the patient's copy, audited as printed when shown."""
    with use_case():
        summary = load_after_visit_summary(actor, encounter_id)
        _record(actor, summary, "after_visit_summary.print")
    return summary


def export_after_visit_summary_pdf(actor, encounter_id: int) -> tuple[AfterVisitSummary, bytes]:
    """The patient's copy as a PDF, audited (rendered before the audit's short transaction,
    which then does not wait for it)."""
    summary = load_after_visit_summary(actor, encounter_id)
    pdf = render_after_visit_pdf(summary)
    with use_case():
        _record(actor, summary, "after_visit_summary.pdf")
    return summary, pdf


def _record(actor, summary: AfterVisitSummary, action: str) -> None:
    audit.record(
        actor,
        action,
        patient=summary.patient,
        obj=summary.encounter,
        category=VISIT_SUMMARY_CATEGORY,
    )

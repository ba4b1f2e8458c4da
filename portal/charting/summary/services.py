"""The chart summary (a patient's front page) and the visit summary (print view and PDF) of
an encounter.

Speed is part of the feature: a patient may have a thousand encounters and thousands of vital
signs, so every query here is bounded (the latest few rows plus counts) and walks an index
that leads with the patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.auth.models import User
from portal.charting.immunizations.services import encounter_immunizations
from portal.charting.lists.services import allergy_state
from portal.charting.models import (
    Encounter,
    Immunization,
    Medication,
    Note,
    Problem,
    VitalSigns,
)
from portal.charting.summary.pdf import render_pdf
from portal.charting.vitals.services import latest_vitals_context
from portal.extensions import db
from portal.patients.models import Patient
from portal.patients.services import get_patient_for
from portal.scheduling import services as scheduling
from portal.transaction import Conflict, use_case

SUMMARY_CATEGORY = "chart summary"
VISIT_SUMMARY_CATEGORY = "visit summary"
RECENT_ENCOUNTERS = 10
UPCOMING_APPOINTMENTS = 5
# More than this many active entries in one list is unusual; the summary shows the first ones
# and says how many there are in all.
LIST_LIMIT = 100


@dataclass
class RecentEncounter:
    """One row of the summary's encounter list."""

    id: int
    occurred_at: datetime
    kind: str
    provider_name: str
    chief_complaint: str | None
    notes: int
    unsigned_notes: int

    @property
    def note_status(self) -> str:
        if not self.notes:
            return "No note"
        return "Unsigned" if self.unsigned_notes else "Signed"


def _bounded(statement, limit: int) -> tuple[list, bool]:
    """The first ``limit`` rows and whether there were more.

    Plain rows of the columns shown, not ORM objects: a hundred problems then cost a
    fraction of a millisecond instead of several.
    """
    rows = db.session.execute(statement.limit(limit + 1)).all()
    return rows[:limit], len(rows) > limit


def recent_encounters(patient_id: int, limit: int = RECENT_ENCOUNTERS) -> list[RecentEncounter]:
    """The latest encounters with their note counts: two small queries whatever the history."""
    rows = db.session.execute(
        select(
            Encounter.id,
            Encounter.occurred_at,
            Encounter.kind,
            Encounter.chief_complaint,
            User.full_name,
        )
        .join(User, User.id == Encounter.provider_id)
        .where(Encounter.patient_id == patient_id)
        .order_by(Encounter.occurred_at.desc(), Encounter.id.desc())
        .limit(limit)
    ).all()
    counts = {}
    if rows:
        counts = {
            encounter_id: (total, unsigned)
            for encounter_id, total, unsigned in db.session.execute(
                select(
                    Note.encounter_id,
                    func.count(Note.id),
                    func.count(Note.id) - func.count(Note.signed_at),
                )
                .where(Note.encounter_id.in_([row.id for row in rows]))
                .group_by(Note.encounter_id)
            )
        }
    return [
        RecentEncounter(
            id=row.id,
            occurred_at=row.occurred_at,
            kind=row.kind,
            provider_name=row.full_name,
            chief_complaint=row.chief_complaint,
            notes=counts.get(row.id, (0, 0))[0],
            unsigned_notes=counts.get(row.id, (0, 0))[1],
        )
        for row in rows
    ]


def upcoming_appointments(patient_id: int, limit: int = UPCOMING_APPOINTMENTS) -> list:
    """The patient's next active appointments (type, provider, location), soonest first."""
    return scheduling.upcoming_appointments(patient_id, limit)


def chart_summary_data(patient_id: int) -> dict:
    """What the patient's front page shows, without the patient row or the audit event.

    About a dozen bounded queries, each on an index that leads with ``patient_id``.
    """
    problems, more_problems = _bounded(
        select(Problem.id, Problem.icd10_code, Problem.description, Problem.onset_date)
        .where(Problem.patient_id == patient_id, Problem.status == "active")
        .order_by(Problem.description, Problem.id),
        LIST_LIMIT,
    )
    # Active allergies and the NKA statement in one statement: the banner's query (not
    # bounded in SQL; the banner on this same page lists every active allergy anyway).
    allergies = allergy_state(patient_id)
    medications, more_medications = _bounded(
        select(
            Medication.id,
            Medication.drug,
            Medication.dose,
            Medication.route,
            Medication.frequency,
        )
        .where(Medication.patient_id == patient_id, Medication.status == "active")
        .order_by(Medication.drug, Medication.id),
        LIST_LIMIT,
    )
    counts = db.session.execute(
        select(
            select(func.count())
            .select_from(Problem)
            .where(Problem.patient_id == patient_id, Problem.status == "active")
            .scalar_subquery(),
            select(func.count())
            .select_from(Medication)
            .where(Medication.patient_id == patient_id, Medication.status == "active")
            .scalar_subquery(),
            select(func.count())
            .select_from(Encounter)
            .where(Encounter.patient_id == patient_id)
            .scalar_subquery(),
            select(func.count())
            .select_from(Immunization)
            .where(Immunization.patient_id == patient_id, Immunization.entered_in_error.is_(False))
            .scalar_subquery(),
        )
    ).one()
    return {
        "problems": problems,
        "problem_count": counts[0] if more_problems else len(problems),
        "allergies": allergies.allergies[:LIST_LIMIT],
        "more_allergies": len(allergies.allergies) > LIST_LIMIT,
        "nka_recorded_at": allergies.nka_recorded_at,
        "medications": medications,
        "medication_count": counts[1] if more_medications else len(medications),
        "encounters": recent_encounters(patient_id),
        "encounter_count": counts[2],
        "appointments": upcoming_appointments(patient_id),
        "immunization_count": counts[3],
        **latest_vitals_context(patient_id),
    }


def chart_summary(actor, patient_id: int) -> dict:
    """Everything the patient's front page shows, and its audit event ("chart.view")."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        context = {"patient": patient, **chart_summary_data(patient_id)}
        audit.record(actor, "chart.view", patient=patient, obj=patient, category=SUMMARY_CATEGORY)
    return context


# --- visit summary ---------------------------------------------------------------------------


@dataclass
class VisitSummary:
    """What the print view and the PDF show of one encounter."""

    patient: Patient
    encounter: Encounter
    notes: list[Note]
    vitals: list[VitalSigns]
    immunizations: list[Immunization] = field(default_factory=list)  # recorded at this visit

    @property
    def is_final(self) -> bool:
        """Every note is signed (and there is one): the summary may be printed or exported."""
        return bool(self.notes) and all(note.is_signed for note in self.notes)


class NoteNotSigned(Conflict):
    """The encounter has no note, or a note not signed yet: nothing final to export.
    ``summary`` is the visit summary, which the refusal page shows."""

    def __init__(self, summary: VisitSummary):
        super().__init__("The visit's note is not signed yet.")
        self.summary = summary


def load_visit_summary(actor, encounter_id: int) -> VisitSummary:
    """The encounter (404 unless its patient is visible to ``actor``), its notes, vitals and
    immunizations."""
    encounter = db.session.get(Encounter, encounter_id)
    if encounter is None:
        raise NotFound()
    patient = get_patient_for(actor, encounter.patient_id)
    notes = list(
        db.session.scalars(
            select(Note).where(Note.encounter_id == encounter.id).order_by(Note.created_at, Note.id)
        )
    )
    vitals = list(
        db.session.scalars(
            select(VitalSigns)
            .where(VitalSigns.encounter_id == encounter.id, VitalSigns.entered_in_error.is_(False))
            .order_by(VitalSigns.taken_at, VitalSigns.id)
        )
    )
    immunizations = encounter_immunizations(encounter.id)
    # Touch the lazy parts now: the rows are read before the audit's use case.
    for note in notes:
        _ = [addendum.author for addendum in note.addenda], note.signed_by
    _ = list(encounter.problems_addressed)
    return VisitSummary(patient, encounter, notes, vitals, immunizations)


def view_visit_summary(actor, encounter_id: int) -> VisitSummary:
    """The print view: audited as a print of the visit summary when it is shown."""
    with use_case():
        summary = load_visit_summary(actor, encounter_id)
        _record_visit_summary(actor, summary, "visit_summary.print")
    return summary


def export_visit_summary_pdf(actor, encounter_id: int) -> tuple[VisitSummary, bytes]:
    """The PDF of a final visit summary, audited; ``NoteNotSigned`` before anything is signed
    (the attempt audited as denied: the refusal page still shows the patient)."""
    summary = load_visit_summary(actor, encounter_id)
    if not summary.is_final:
        with use_case():
            _record_visit_summary(actor, summary, "visit_summary.pdf", outcome="denied")
        raise NoteNotSigned(summary)
    # Rendered before the use case: the audit's transaction does not wait for the PDF.
    pdf = render_pdf(summary)
    with use_case():
        _record_visit_summary(actor, summary, "visit_summary.pdf")
    return summary, pdf


def _record_visit_summary(
    actor, summary: VisitSummary, action: str, outcome: str = "success"
) -> None:
    audit.record(
        actor,
        action,
        outcome=outcome,
        patient=summary.patient,
        obj=summary.encounter,
        category=VISIT_SUMMARY_CATEGORY,
        detail=f"notes={','.join(str(note.id) for note in summary.notes)}",
    )

"""Charting: encounters, notes and addenda, vitals, problems, allergies, medications,
immunizations, and the history of every change to the patient's lists.

Signed is signed: once a note has ``signed_at`` its text can never change and it can never be
deleted. The services never try, and the database refuses it as well (triggers from migration
0003 on both PostgreSQL and SQLite), so no code path, present or future, can rewrite what a
clinician signed. Addenda are signed when written and are immutable the same way.

Vital signs are stored in canonical UCUM units whatever unit they were typed in; the column
names say which (``_mmhg`` = mm[Hg], ``_per_min`` = /min, ``_cel`` = Cel, ``_kg``, ``_cm``,
``bmi`` = kg/m2, ``spo2_percent`` = %).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text  # "text" is also a column name here
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import UTCDateTime, utcnow

ENCOUNTER_KINDS = {"office": "Office visit", "telehealth": "Telehealth", "phone": "Phone"}
NOTE_KINDS = {"provider": "Provider note", "nursing": "Nursing note"}
NOTE_STATUSES = {"draft": "Draft", "signed": "Signed"}
BP_POSITIONS = {"sitting": "Sitting", "standing": "Standing", "lying": "Lying"}
PROBLEM_STATUSES = {"active": "Active", "resolved": "Resolved", "inactive": "Inactive"}
SUBSTANCE_KINDS = {
    "drug": "Drug",
    "drug_class": "Drug class",
    "food": "Food",
    "environmental": "Environmental",
}
ALLERGY_SEVERITIES = {"mild": "Mild", "moderate": "Moderate", "severe": "Severe"}
ALLERGY_CRITICALITIES = {"low": "Low", "high": "High", "unable_to_assess": "Unable to assess"}
ALLERGY_STATUSES = {
    "active": "Active",
    "inactive": "Inactive",
    "entered_in_error": "Entered in error",
}
MEDICATION_STATUSES = {
    "active": "Active",
    "stopped": "Stopped",
    "entered_in_error": "Entered in error",
}
MEDICATION_SOURCES = {
    "self_reported": "Reported by patient",
    "outside_record": "Outside record",
    "prescribed_here": "Prescribed here",
}
RECONCILIATION_ACTIONS = {"continue": "Continue", "stop": "Stop", "change": "Change"}
IMMUNIZATION_SOURCES = {"administered": "Given here", "historical": "Historical record"}
# The lists whose every change is kept in ChartItemRevision.
REVISED_ITEM_TYPES = ("problem", "allergy", "medication")

# The most a note (or an addendum) may hold; longer is refused with a message, never cut.
NOTE_MAX_CHARS = 200_000

encounter_problems = Table(
    "encounter_problems",
    db.metadata,
    Column("encounter_id", ForeignKey("encounters.id", ondelete="CASCADE"), primary_key=True),
    Column("problem_id", ForeignKey("problems.id", ondelete="CASCADE"), primary_key=True),
)


class Encounter(db.Model):
    """A visit (office, telehealth or phone), started from an appointment or ad hoc."""

    __tablename__ = "encounters"
    __table_args__ = (
        Index("ix_encounters_patient_time", "patient_id", "occurred_at"),
        Index("ix_encounters_provider_time", "provider_id", "occurred_at"),
        # An ad hoc encounter's form key: the same form sent twice makes one encounter.
        Index("uq_encounters_request_key", "request_key", unique=True),
        CheckConstraint("kind IN ('office', 'telehealth', 'phone')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    # One encounter per appointment: pressing "Start visit" twice opens the same one.
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"), unique=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    kind: Mapped[str] = mapped_column(String(16), default="office")
    chief_complaint: Mapped[str | None] = mapped_column(String(500))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_key: Mapped[str | None] = mapped_column(String(32))

    provider = relationship("User", foreign_keys=[provider_id], lazy="joined")
    location = relationship("Location", lazy="joined")
    problems_addressed = relationship("Problem", secondary=encounter_problems, lazy="selectin")


class Note(db.Model):
    """A clinical note of an encounter: a draft until signed, then locked for ever.

    ``version`` counts draft saves: a save that names an older version than the stored one
    was typed over someone else's save, and is refused (the editor shows both texts).
    """

    __tablename__ = "notes"
    __table_args__ = (
        Index("ix_notes_author_unsigned", "author_id", "signed_at"),
        Index("ix_notes_cosigner", "cosigner_id", "cosigned_at"),
        # One note of each kind per encounter (the page offers "Start provider note" only
        # while there is none; corrections go in addenda). The index, not a read first,
        # decides two clicks racing: the loser opens the winner's note (notes.start_note).
        # It also serves every lookup by encounter (its first column).
        Index("uq_notes_encounter_kind", "encounter_id", "kind", unique=True),
        # The few drafts of the whole clinic: the home page finds the provider notes waiting
        # on a prescriber from here, not by walking every encounter they ever had.
        Index(
            "ix_notes_unsigned",
            "created_at",
            sqlite_where=sql_text("signed_at IS NULL"),
            postgresql_where=sql_text("signed_at IS NULL"),
        ),
        CheckConstraint("kind IN ('provider', 'nursing')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounters.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16), default="provider")
    text: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(default=1)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    saved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # SHA-256 of the text as signed: the page can show it is exactly what was signed.
    signed_text_sha256: Mapped[str | None] = mapped_column(String(64))
    # Routed for co-signature (a supervised clinician's note): who must co-sign, and when they did.
    cosigner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cosigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author = relationship("User", foreign_keys=[author_id], lazy="joined")
    signed_by = relationship("User", foreign_keys=[signed_by_id])
    cosigner = relationship("User", foreign_keys=[cosigner_id])
    addenda = relationship("NoteAddendum", order_by="NoteAddendum.signed_at", lazy="selectin")

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None


class NoteAddendum(db.Model):
    """A correction or addition to a signed note; signed when written, never changed."""

    __tablename__ = "note_addenda"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    signed_text_sha256: Mapped[str] = mapped_column(String(64))

    author = relationship("User", lazy="joined")


class NoteTemplate(db.Model):
    """The text a new note starts from, per visit (appointment) type; admin-editable."""

    __tablename__ = "note_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # None: the default for visits without a type of their own (ad hoc encounters).
    appointment_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointment_types.id", ondelete="SET NULL"), index=True
    )
    note_kind: Mapped[str] = mapped_column(String(16), default="provider")
    body: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class NoteSnippet(db.Model):
    """Text that replaces a short trigger (".ros") as the clinician types.

    ``owner_id`` None is clinic-wide; a user's own snippet wins over a clinic-wide one with the
    same trigger.
    """

    __tablename__ = "note_snippets"
    __table_args__ = (UniqueConstraint("owner_id", "trigger"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class VitalSigns(db.Model):
    """One set of vital signs taken at one time, in canonical UCUM units (see module doc)."""

    __tablename__ = "vital_signs"
    __table_args__ = (Index("ix_vital_signs_patient_time", "patient_id", "taken_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"), index=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    systolic_mmhg: Mapped[int | None]
    diastolic_mmhg: Mapped[int | None]
    bp_position: Mapped[str | None] = mapped_column(String(16))
    heart_rate_per_min: Mapped[int | None]
    respiratory_rate_per_min: Mapped[int | None]
    temperature_cel: Mapped[float | None]
    spo2_percent: Mapped[int | None]
    weight_kg: Mapped[float | None]
    height_cm: Mapped[float | None]
    bmi: Mapped[float | None]  # computed from weight and height when both are given
    pain_score: Mapped[int | None]  # 0-10
    head_circumference_cm: Mapped[float | None]
    # Mistakes are marked, never deleted: the chart keeps what was once shown.
    entered_in_error: Mapped[bool] = mapped_column(default=False)
    # Why, in the words of whoever marked it (asked for on the confirmation page); the audit
    # trail, which holds no free text, records who and when.
    entered_in_error_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Problem(db.Model):
    """An entry of the problem list, coded with a billable ICD-10-CM code."""

    __tablename__ = "problems"
    __table_args__ = (
        Index("ix_problems_patient_status", "patient_id", "status"),
        CheckConstraint("status IN ('active', 'resolved', 'inactive')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    icd10_code: Mapped[str] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(String(300))
    onset_date: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(16), default="active")
    comment: Mapped[str | None] = mapped_column(String(1000))
    version: Mapped[int] = mapped_column(default=1)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __mapper_args__ = {"version_id_col": version}


class DiagnosisFavourite(db.Model):
    """A clinician's starred ICD-10-CM code: offered first in their diagnosis searches."""

    __tablename__ = "diagnosis_favourites"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    icd10_code: Mapped[str] = mapped_column(String(8), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DiagnosisUse(db.Model):
    """How often the clinic has used a code (problems recorded with it, visits that addressed
    it): counted as it happens, so that a search can rank the clinic's own diagnoses first
    without counting a million patients' problems each time someone types."""

    __tablename__ = "diagnosis_uses"
    # (uses, code) read backwards gives "most used first" without sorting the table.
    __table_args__ = (Index("ix_diagnosis_uses_uses", "uses", "icd10_code"),)

    icd10_code: Mapped[str] = mapped_column(String(8), primary_key=True)
    uses: Mapped[int] = mapped_column(default=0)


class Allergy(db.Model):
    """An allergy or intolerance. Marked entered-in-error, never deleted."""

    __tablename__ = "allergies"
    __table_args__ = (
        Index("ix_allergies_patient_status", "patient_id", "status"),
        CheckConstraint(
            "substance_kind IN ('drug', 'drug_class', 'food', 'environmental')",
            name="substance_kind",
        ),
        CheckConstraint("status IN ('active', 'inactive', 'entered_in_error')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    substance_kind: Mapped[str] = mapped_column(String(16))
    substance: Mapped[str] = mapped_column(String(200))
    rxnorm_code: Mapped[str | None] = mapped_column(String(16))  # the RxNorm ingredient (RxCUI)
    # A drug class's stable code (terminology/allergy_classes.py): "ATC:J01C", "PORTAL:...".
    drug_class_code: Mapped[str | None] = mapped_column(String(32))
    reactions: Mapped[list] = mapped_column(JSON, default=list)
    severity: Mapped[str | None] = mapped_column(String(16))
    criticality: Mapped[str | None] = mapped_column(String(16))
    onset_date: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(16), default="active")
    comment: Mapped[str | None] = mapped_column(String(1000))
    version: Mapped[int] = mapped_column(default=1)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __mapper_args__ = {"version_id_col": version}


class NoKnownAllergies(db.Model):
    """The patient was asked and has no known allergies: an explicit, dated statement.

    No row and no allergy means "not yet asked". Recording an allergy removes the row.
    """

    __tablename__ = "no_known_allergies"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Medication(db.Model):
    """A medication the patient takes or took (self-reported, from elsewhere, or ours)."""

    __tablename__ = "medications"
    __table_args__ = (
        Index("ix_medications_patient_status", "patient_id", "status"),
        CheckConstraint("status IN ('active', 'stopped', 'entered_in_error')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    drug: Mapped[str] = mapped_column(String(200))
    rxnorm_code: Mapped[str | None] = mapped_column(String(16))
    dose: Mapped[str | None] = mapped_column(String(100))
    route: Mapped[str | None] = mapped_column(String(50))
    frequency: Mapped[str | None] = mapped_column(String(100))
    start_date: Mapped[date | None]
    stop_date: Mapped[date | None]
    prescriber: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16), default="self_reported")
    status: Mapped[str] = mapped_column(String(16), default="active")
    stop_reason: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(default=1)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __mapper_args__ = {"version_id_col": version}


class MedicationReconciliation(db.Model):
    """What was decided about one medication at one visit: continue, stop (why) or change."""

    __tablename__ = "medication_reconciliations"
    __table_args__ = (CheckConstraint("action IN ('continue', 'stop', 'change')", name="action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounters.id"), index=True)
    medication_id: Mapped[int] = mapped_column(ForeignKey("medications.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recorded_by = relationship("User", lazy="joined")


class Immunization(db.Model):
    """A vaccine given here, one from another record, or a refusal."""

    __tablename__ = "immunizations"
    __table_args__ = (Index("ix_immunizations_patient_date", "patient_id", "occurred_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    # The visit it was recorded at (from the encounter page), like a set of vitals; None when
    # recorded from the patient's immunization page.
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"), index=True)
    cvx_code: Mapped[str] = mapped_column(String(8))
    vaccine: Mapped[str] = mapped_column(String(200))
    occurred_on: Mapped[date]
    dose_number: Mapped[int | None]
    lot_number: Mapped[str | None] = mapped_column(String(50))
    manufacturer: Mapped[str | None] = mapped_column(String(100))
    site: Mapped[str | None] = mapped_column(String(50))
    route: Mapped[str | None] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(16), default="administered")
    refused: Mapped[bool] = mapped_column(default=False)
    refusal_reason: Mapped[str | None] = mapped_column(String(500))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Mistakes are marked, never deleted (as vital signs are, migration 0005): the record
    # keeps what was once shown, struck out with the reason; the visit's lists and the chart
    # summary's count leave it out. Who marked it and when is in the audit trail.
    entered_in_error: Mapped[bool] = mapped_column(default=False)
    entered_in_error_reason: Mapped[str | None] = mapped_column(String(300))


class ChartItemRevision(db.Model):
    """One change to a problem, allergy or medication: who, when, and the values before/after.

    ``before`` is None for the change that created the item.
    """

    __tablename__ = "chart_item_revisions"
    __table_args__ = (
        Index("ix_chart_item_revisions_item", "item_type", "item_id", "changed_at"),
        CheckConstraint("item_type IN ('problem', 'allergy', 'medication')", name="item_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_type: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[int]
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict] = mapped_column(JSON)

    changed_by = relationship("User", lazy="joined")

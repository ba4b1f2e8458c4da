"""Encounters: starting a visit from an appointment or ad hoc, and loading one to show it.

Each public function that changes something is one transaction with its audit event
(category "encounters"). Starting a visit from an appointment also moves the appointment to
"with provider" through scheduling's own status change, in the same transaction, so its
rules (a visit starts from a checked-in or roomed patient) hold here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defaultload, selectinload
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.charting.models import ENCOUNTER_KINDS, Encounter, Note
from portal.extensions import db
from portal.timeutil import utcnow

CATEGORY = "encounters"
# A form's one-time key, as new_encounter makes it (secrets.token_hex(16)).
REQUEST_KEY = re.compile(r"[0-9a-f]{32}")
# Where the appointment must be for "Start visit" to move it on (or already be).
STARTABLE_STATUSES = ("arrived", "roomed")
# A clock a little ahead of the server's is not a typing mistake; more than this is.
FUTURE_SLACK = timedelta(minutes=10)


class ChartingError(Exception):
    """A refused charting change; ``field`` names the form field to show it beside."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def lock_patient(patient_id: int) -> None:
    """Hold the patient's row until this transaction ends, so that use cases which check a
    patient's chart and then write to it run one at a time per patient.

    PostgreSQL (READ COMMITTED) would otherwise let two transactions check the same state
    and both write: "no known allergies" stored beside an allergy recorded at the same
    moment. ``FOR NO KEY UPDATE`` leaves
    rows that merely reference the patient (foreign keys take ``KEY SHARE``) unblocked.
    On SQLite it is a plain read: ``BEGIN IMMEDIATE`` already serializes every writer.
    """
    from portal.patients.models import Patient

    db.session.execute(
        select(Patient.id).where(Patient.id == patient_id).with_for_update(key_share=True)
    )


def get_encounter_for(actor, encounter_id: int, patient_id: int | None = None) -> Encounter:
    """The encounter ``actor`` may see (its patient through the one patient helper), or 404."""
    from portal.patients.services import get_patient_for

    encounter = db.session.get(Encounter, encounter_id)
    if encounter is None or (patient_id is not None and encounter.patient_id != patient_id):
        raise NotFound()
    get_patient_for(actor, encounter.patient_id)
    return encounter


def prescriber_names() -> list[tuple[int, str]]:
    """(id, name) of enabled prescribers, by name: an encounter's providers, the co-signers."""
    from portal.auth.models import User, UserRole

    return [
        (row.id, row.full_name)
        for row in db.session.execute(
            select(User.id, User.full_name)
            .where(User.is_enabled.is_(True), User.role_rows.any(UserRole.role == "prescriber"))
            .order_by(User.full_name)
        )
    ]


def check_prescriber(provider_id: int | None):
    from portal.auth.models import User

    provider = db.session.get(User, provider_id) if provider_id else None
    if provider is None or not provider.is_enabled or "prescriber" not in provider.roles:
        raise ChartingError("Choose the provider.", field="provider_id")
    return provider


def _check_location(location_id: int | None):
    from portal.clinic.models import Location

    if location_id is None:
        return None
    location = db.session.get(Location, location_id)
    if location is None or not location.is_active:
        raise ChartingError("Choose one of the clinic's locations.", field="location_id")
    return location


def start_visit(actor, appointment_id: int, *, now: datetime | None = None) -> Encounter:
    """Open the encounter of an appointment, creating it the first time.

    The first time, the appointment moves to "with provider" (from checked in or roomed; an
    appointment already with the provider just gets its encounter). Pressing it again opens
    the same encounter: ``appointment_id`` is unique, so even two clicks racing end on one.
    Refuses (ChartingError) appointments that are not yet checked in, or are over.
    """
    from portal.scheduling import flow
    from portal.scheduling.models import STATUS_LABELS
    from portal.scheduling.services import SchedulingError, get_appointment_for

    now = now or utcnow()
    existing = db.session.scalar(
        select(Encounter).where(Encounter.appointment_id == appointment_id)
    )
    if existing is not None:
        get_encounter_for(actor, existing.id)
        db.session.rollback()
        return existing
    appointment = get_appointment_for(actor, appointment_id)
    status = appointment.status
    if status not in (*STARTABLE_STATUSES, "with_provider"):
        db.session.rollback()
        raise ChartingError(
            f"This appointment is {STATUS_LABELS[status].lower()}: a visit starts once the "
            "patient is checked in (or roomed)."
        )
    kind = "telehealth" if appointment.appointment_type.modality == "telehealth" else "office"
    encounter = Encounter(
        patient_id=appointment.patient_id,
        appointment_id=appointment.id,
        provider_id=appointment.provider_id,
        location_id=appointment.location_id,
        kind=kind,
        chief_complaint=(appointment.reason or "").strip() or None,
        occurred_at=now,
        created_by_id=actor.id,
    )
    db.session.add(encounter)
    try:
        db.session.flush()
        audit.record(
            actor,
            "encounter.create",
            patient_id=encounter.patient_id,
            obj=encounter,
            category=CATEGORY,
            detail=f"appointment={appointment.id} kind={kind}",
        )
        if status == "with_provider":
            db.session.commit()
        else:
            # Scheduling's change commits the encounter, its audit event and the new status
            # together (and rolls all of them back when it refuses).
            flow.change_status(actor, appointment.id, "with_provider", appointment.version, now=now)
    except IntegrityError:
        db.session.rollback()  # the other click won: open the encounter it made
        encounter = db.session.scalar(
            select(Encounter).where(Encounter.appointment_id == appointment_id)
        )
        if encounter is None:
            raise
        db.session.rollback()
        return encounter
    except SchedulingError as error:
        raise ChartingError(error.message) from error
    return encounter


def create_encounter(
    actor,
    patient_id: int,
    *,
    kind: str,
    provider_id: int | None,
    location_id: int | None,
    chief_complaint: str | None,
    occurred_at: datetime | None,
    request_key: str | None = None,
) -> Encounter:
    """An ad hoc encounter (a phone call, a walk-in): no appointment behind it.

    ``request_key`` is the one-time key of the form it came from: the same form sent again
    (a double click, a resent post) returns the encounter it made the first time instead of
    making another; two sends racing meet on the key's unique index and end on one.
    """
    from portal.patients.services import get_patient_for

    patient = get_patient_for(actor, patient_id)
    request_key = request_key if request_key and REQUEST_KEY.fullmatch(request_key) else None
    if request_key:
        made = _encounter_made_by_request(actor, patient.id, request_key)
        if made is not None:
            db.session.rollback()
            return made
    if kind not in ENCOUNTER_KINDS:
        raise ChartingError("Choose office, telehealth or phone.", field="kind")
    provider = check_prescriber(provider_id)
    location = _check_location(location_id)
    if occurred_at is None:
        raise ChartingError("Give the date and time of the encounter.", field="occurred_on")
    if occurred_at > utcnow() + FUTURE_SLACK:
        raise ChartingError("An encounter cannot be in the future.", field="occurred_on")
    encounter = Encounter(
        patient_id=patient.id,
        provider_id=provider.id,
        location_id=location.id if location else None,
        kind=kind,
        chief_complaint=(chief_complaint or "").strip() or None,
        occurred_at=occurred_at,
        created_by_id=actor.id,
        request_key=request_key,
    )
    db.session.add(encounter)
    try:
        db.session.flush()
    except IntegrityError:
        # The same form's other send won the race (the key's unique index): open its encounter.
        db.session.rollback()
        made = _encounter_made_by_request(actor, patient.id, request_key) if request_key else None
        if made is None:
            raise
        db.session.rollback()
        return made
    audit.record(
        actor,
        "encounter.create",
        patient=patient,
        obj=encounter,
        category=CATEGORY,
        detail=f"ad hoc kind={kind}",
    )
    db.session.commit()
    return encounter


def _encounter_made_by_request(actor, patient_id: int, request_key: str) -> Encounter | None:
    """The encounter an earlier send of the same form made (by this user, for this patient)."""
    return db.session.scalar(
        select(Encounter).where(
            Encounter.request_key == request_key,
            Encounter.patient_id == patient_id,
            Encounter.created_by_id == actor.id,
        )
    )


@dataclass
class EncounterPage:
    """Everything the encounter page shows, loaded in a handful of queries."""

    encounter: Encounter
    patient: object
    notes: list[Note]
    names: dict[int, str] = field(default_factory=dict)  # user id -> full name


def view_encounter(actor, encounter_id: int) -> EncounterPage:
    """Load an encounter with its patient and notes, and audit the view ("encounters")."""
    page = load_encounter(actor, encounter_id)
    audit.record(
        actor,
        "encounter.view",
        patient_id=page.encounter.patient_id,
        obj=page.encounter,
        category=CATEGORY,
        detail=f"notes={len(page.notes)}",
    )
    db.session.commit()
    return page


def load_encounter(actor, encounter_id: int) -> EncounterPage:
    """An encounter with its patient and notes (404 unless the patient is visible to ``actor``).

    A fixed handful of queries whatever the chart holds: addenda come in one query for all
    notes, authors are joined, and the users' roles (which the page does not need) are
    left unloaded (loaded only if something asks).
    """
    from portal.auth.models import User
    from portal.charting.models import NoteAddendum
    from portal.patients.services import get_patient_for

    encounter = db.session.scalar(
        select(Encounter)
        .where(Encounter.id == encounter_id)
        .options(defaultload(Encounter.provider).lazyload(User.role_rows))
    )
    if encounter is None:
        raise NotFound()
    patient = get_patient_for(actor, encounter.patient_id)
    notes = list(
        db.session.scalars(
            select(Note)
            .where(Note.encounter_id == encounter.id)
            .options(
                defaultload(Note.author).lazyload(User.role_rows),
                selectinload(Note.addenda).joinedload(NoteAddendum.author).lazyload(User.role_rows),
            )
            .order_by(Note.created_at, Note.id)
        )
    )
    wanted = {
        uid for note in notes for uid in (note.signed_by_id, note.cosigner_id) if uid is not None
    }
    names = (
        dict(db.session.execute(select(User.id, User.full_name).where(User.id.in_(wanted))).all())
        if wanted
        else {}
    )
    return EncounterPage(encounter=encounter, patient=patient, notes=notes, names=names)

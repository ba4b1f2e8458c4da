"""Encounters: starting a visit from an appointment or ad hoc, and loading one to show it.

Each public function that changes something (or audits a read) is one use case with its
audit event (category "encounters"). A prescriber starting a visit from an appointment also
moves the appointment to "with provider" through scheduling's own status change (its work
function, in the same transaction), so its rules (a visit starts from a checked-in or roomed
patient) hold here too. A nurse starting it (to write the intake note) opens the same
encounter but leaves the flow board's card where it is: the provider is not in the room yet.

Other topics act on a visit's start through ``@on_visit_started`` (vitals adopts the sets
taken at rooming), so this module imports none of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defaultload, selectinload
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.auth.models import User, UserRole
from portal.charting.models import ENCOUNTER_KINDS, Encounter, Note, NoteAddendum
from portal.clinic.models import Location
from portal.extensions import db
from portal.patients.models import Patient
from portal.patients.services import get_patient_for
from portal.scheduling.flow.services import apply_status_change
from portal.scheduling.models import STATUS_LABELS
from portal.scheduling.services import get_appointment_for
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case

CATEGORY = "encounters"
# A form's one-time key, as the new-encounter form makes it (secrets.token_hex(16)).
REQUEST_KEY = re.compile(r"[0-9a-f]{32}")
# Where the appointment must be for "Start visit" to move it on (or already be).
STARTABLE_STATUSES = ("arrived", "roomed")
# A clock a little ahead of the server's is not a typing mistake; more than this is.
FUTURE_SLACK = timedelta(minutes=10)
# Who moves the visit to "with provider" by starting it: those who sign provider notes.
PROVIDER_PERMISSION = "chart.sign"

VisitStartHook = Callable[[object, Encounter, datetime], None]
_VISIT_START_HOOKS: list[VisitStartHook] = []


def on_visit_started(hook: VisitStartHook) -> VisitStartHook:
    """Register ``hook(actor, encounter, now)``: work (flush only) done in the use case that
    opens an appointment's encounter, right after the encounter is inserted."""
    _VISIT_START_HOOKS.append(hook)
    return hook


def get_encounter_for(actor, encounter_id: int, patient_id: int | None = None) -> Encounter:
    """The encounter ``actor`` may see (its patient through the one patient helper), or 404;
    with ``patient_id``, only that patient's."""
    encounter = db.session.get(Encounter, encounter_id)
    if encounter is None or (patient_id is not None and encounter.patient_id != patient_id):
        raise NotFound()
    get_patient_for(actor, encounter.patient_id)
    return encounter


def prescriber_names() -> list[tuple[int, str]]:
    """(id, name) of enabled prescribers, by name: an encounter's providers, the co-signers."""
    return [
        (row.id, row.full_name)
        for row in db.session.execute(
            select(User.id, User.full_name)
            .where(User.is_enabled.is_(True), User.role_rows.any(UserRole.role == "prescriber"))
            .order_by(User.full_name)
        )
    ]


def check_prescriber(provider_id: int | None) -> User:
    """The enabled prescriber ``provider_id`` names; refused beside "provider_id" otherwise."""
    provider = db.session.get(User, provider_id) if provider_id else None
    if provider is None or not provider.is_enabled or "prescriber" not in provider.roles:
        raise Refused("Choose the provider.", field="provider_id")
    return provider


def _check_location(location_id: int | None) -> Location | None:
    if location_id is None:
        return None
    location = db.session.get(Location, location_id)
    if location is None or not location.is_active:
        raise Refused("Choose one of the clinic's locations.", field="location_id")
    return location


def _encounter_of_appointment(appointment_id: int) -> Encounter | None:
    return db.session.scalar(select(Encounter).where(Encounter.appointment_id == appointment_id))


def start_visit(actor, appointment_id: int, *, now: datetime | None = None) -> Encounter:
    """Open the encounter of an appointment, creating it the first time.

    A prescriber's start moves the appointment to "with provider" (from checked in or
    roomed), the first time or after a nurse opened the encounter for her intake note; a
    nurse's start leaves the status alone. Pressing it again opens the same encounter:
    ``appointment_id`` is unique, so of two clicks racing, the one whose insert loses opens
    the encounter the other made. Refuses appointments that are not yet checked in, or are
    over.
    """
    now = now or utcnow()
    provider_in = actor.has_permission(PROVIDER_PERMISSION)
    with use_case():
        existing = _encounter_of_appointment(appointment_id)
        if existing is not None:
            get_encounter_for(actor, existing.id)
            appointment = get_appointment_for(actor, appointment_id)
            if provider_in and appointment.status in STARTABLE_STATUSES:
                apply_status_change(actor, appointment, "with_provider", now=now)
            return existing
        appointment = get_appointment_for(actor, appointment_id)
        status = appointment.status
        if status not in (*STARTABLE_STATUSES, "with_provider"):
            raise Refused(
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
        try:
            with db.session.begin_nested():
                db.session.add(encounter)
                db.session.flush()
        except IntegrityError:
            winner = _encounter_of_appointment(appointment_id)  # the other click won
            if winner is None:
                raise
            return winner
        audit.record(
            actor,
            "encounter.create",
            patient_id=encounter.patient_id,
            obj=encounter,
            category=CATEGORY,
            detail=f"appointment={appointment.id} kind={kind}",
        )
        for hook in _VISIT_START_HOOKS:
            hook(actor, encounter, now)
        if provider_in and status != "with_provider":
            apply_status_change(actor, appointment, "with_provider", now=now)
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
    request_key = request_key if request_key and REQUEST_KEY.fullmatch(request_key) else None
    with use_case():
        patient = get_patient_for(actor, patient_id)
        if request_key:
            made = _encounter_made_by_request(actor, patient.id, request_key)
            if made is not None:
                return made
        if kind not in ENCOUNTER_KINDS:
            raise Refused("Choose office, telehealth or phone.", field="kind")
        provider = check_prescriber(provider_id)
        location = _check_location(location_id)
        if occurred_at is None:
            raise Refused("Give the date and time of the encounter.", field="occurred_on")
        if occurred_at > utcnow() + FUTURE_SLACK:
            raise Refused("An encounter cannot be in the future.", field="occurred_on")
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
        try:
            with db.session.begin_nested():
                db.session.add(encounter)
                db.session.flush()
        except IntegrityError:
            # The same form's other send won the race (the key's unique index): open its
            # encounter.
            made = (
                _encounter_made_by_request(actor, patient.id, request_key) if request_key else None
            )
            if made is None:
                raise
            return made
        audit.record(
            actor,
            "encounter.create",
            patient=patient,
            obj=encounter,
            category=CATEGORY,
            detail=f"ad hoc kind={kind}",
        )
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
    """The encounter with its patient and notes, loaded in a handful of queries; the other
    topics' sections of the page load their own parts."""

    encounter: Encounter
    patient: Patient
    notes: list[Note]
    names: dict[int, str] = field(default_factory=dict)  # user id -> full name


def view_encounter(actor, encounter_id: int) -> EncounterPage:
    """Load an encounter with its patient and notes, and audit the view ("encounters")."""
    with use_case():
        page = load_encounter(actor, encounter_id)
        audit.record(
            actor,
            "encounter.view",
            patient_id=page.encounter.patient_id,
            obj=page.encounter,
            category=CATEGORY,
            detail=f"notes={len(page.notes)}",
        )
    return page


def load_encounter(actor, encounter_id: int) -> EncounterPage:
    """An encounter with its patient and notes (404 unless the patient is visible to ``actor``).

    A fixed handful of queries whatever the chart holds: addenda come in one query for all
    notes, authors are joined, and the users' roles (which the page does not need) are
    left unloaded (loaded only if something asks).
    """
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

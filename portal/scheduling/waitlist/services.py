"""The waitlist: patients who want an earlier slot of a type, with some providers, within
some dates; the entries that could take a freed appointment's time.

Each public function that changes something is one use case with its audit event
(category "appointments"); the lists record that they named patients.
``close_waitlist_entry`` is the work of marking an entry booked, for the booking use case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.auth.models import User
from portal.clinic.clock import clinic_today, clinic_zone
from portal.extensions import db
from portal.patients.models import Patient
from portal.patients.services import get_patient_for
from portal.scheduling.models import Appointment, AppointmentType, WaitlistEntry
from portal.scheduling.services import CATEGORY, get_appointment_for
from portal.transaction import Refused, use_case

WAITLIST_MAX_DAYS = 366


def parse_provider_ids(text: str | None) -> list[int]:
    """The provider ids a waitlist entry stores as "3,5" (empty: any provider)."""
    return [int(part) for part in (text or "").split(",") if part.strip().isdigit()]


def patient_or_none(patient_id: int) -> Patient | None:
    """The patient with that id, or None (a form's choice that no longer exists)."""
    return db.session.get(Patient, patient_id)


def add_waitlist_entry(
    actor,
    *,
    patient_id: int,
    appointment_type_id: int,
    provider_ids: list[int],
    earliest_day: date,
    latest_day: date,
    notes: str | None = None,
    today: date | None = None,
) -> WaitlistEntry:
    """Put a patient on the waitlist for an earlier slot of a type, with some providers."""
    today = today or clinic_today()
    with use_case():
        try:
            patient = get_patient_for(actor, patient_id)
        except NotFound as error:
            raise Refused("Find and choose the patient.", field="patient_id") from error
        appointment_type = db.session.get(AppointmentType, appointment_type_id)
        if appointment_type is None or not appointment_type.is_active:
            raise Refused("Choose an appointment type.", field="appointment_type_id")
        offering = {provider.id for provider in appointment_type.providers}
        if any(provider_id not in offering for provider_id in provider_ids):
            raise Refused(
                f"Not every chosen provider offers {appointment_type.name}.",
                field="provider_ids",
            )
        if earliest_day < today:
            raise Refused("The earliest day cannot be in the past.", field="earliest_day")
        if latest_day < earliest_day:
            raise Refused(
                "The latest day must be on or after the earliest day.", field="latest_day"
            )
        if (latest_day - today).days > WAITLIST_MAX_DAYS:
            raise Refused("Choose a latest day within a year.", field="latest_day")
        entry = WaitlistEntry(
            patient_id=patient.id,
            appointment_type_id=appointment_type.id,
            provider_ids=",".join(str(pid) for pid in sorted(set(provider_ids))),
            earliest_day=earliest_day,
            latest_day=latest_day,
            notes=(notes or "").strip() or None,
            status="waiting",
            created_by_id=actor.id,
        )
        db.session.add(entry)
        audit.record(actor, "waitlist.add", patient=patient, obj=entry, category=CATEGORY)
    return entry


@dataclass
class WaitlistRow:
    """A waitlist entry with what the lists show about it."""

    entry: WaitlistEntry
    patient: Patient
    type_name: str
    provider_names: list[str]


def _waitlist_rows(entries: list[WaitlistEntry]) -> list[WaitlistRow]:
    if not entries:
        return []
    patients = {
        p.id: p
        for p in db.session.scalars(
            select(Patient).where(Patient.id.in_({e.patient_id for e in entries}))
        )
    }
    types = dict(db.session.execute(select(AppointmentType.id, AppointmentType.name)).all())
    wanted = {pid for e in entries for pid in parse_provider_ids(e.provider_ids)}
    names = (
        dict(db.session.execute(select(User.id, User.full_name).where(User.id.in_(wanted))).all())
        if wanted
        else {}
    )
    return [
        WaitlistRow(
            entry=e,
            patient=patients[e.patient_id],
            type_name=types.get(e.appointment_type_id, ""),
            provider_names=[names.get(pid, "") for pid in parse_provider_ids(e.provider_ids)],
        )
        for e in entries
    ]


def list_waitlist(actor) -> list[WaitlistRow]:
    """Everyone waiting, first come first; audited when it names anyone."""
    with use_case():
        entries = list(
            db.session.scalars(
                select(WaitlistEntry)
                .where(WaitlistEntry.status == "waiting")
                .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
            )
        )
        rows = _waitlist_rows(entries)
        if rows:
            audit.record(actor, "waitlist.view", category=CATEGORY, detail=f"entries={len(rows)}")
    return rows


def remove_waitlist_entry(actor, entry_id: int) -> None:
    """Take a patient off the waitlist (kept, marked removed); an entry no longer waiting is
    left as it is."""
    with use_case():
        entry = db.session.get(WaitlistEntry, entry_id)
        if entry is None:
            raise NotFound()
        if entry.status != "waiting":
            return
        entry.status = "removed"
        audit.record(
            actor, "waitlist.remove", patient_id=entry.patient_id, obj=entry, category=CATEGORY
        )


def matching_waitlist_entries(appointment: Appointment) -> list[WaitlistEntry]:
    """Waiting entries that could take the time ``appointment`` held, best first.

    An entry matches when the freed provider offers its type, the type fits in the freed
    time, the provider is one the patient accepts (or they accept any), and the day is
    within the entry's range. Entries for the same type come first, then the oldest. The
    appointment's own patient is left out. Reads only: the caller audits what it shows.
    """
    day = appointment.starts_at.astimezone(clinic_zone()).date()
    minutes = max(0, int((appointment.ends_at - appointment.starts_at).total_seconds() // 60))
    offered = select(AppointmentType.id).where(
        AppointmentType.is_active.is_(True),
        AppointmentType.default_minutes <= minutes,
        AppointmentType.providers.any(User.id == appointment.provider_id),
    )
    candidates = db.session.scalars(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.status == "waiting",
            WaitlistEntry.appointment_type_id.in_(offered),
            WaitlistEntry.earliest_day <= day,
            WaitlistEntry.latest_day >= day,
            WaitlistEntry.patient_id != appointment.patient_id,
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
    )
    matches = [
        entry
        for entry in candidates
        if not entry.provider_ids
        or appointment.provider_id in parse_provider_ids(entry.provider_ids)
    ]
    matches.sort(key=lambda e: e.appointment_type_id != appointment.appointment_type_id)
    return matches


def show_waitlist_matches(actor, appointment_id: int) -> tuple[Appointment, list[WaitlistRow]]:
    """The freed appointment and the waitlist entries that could take its time; audited."""
    with use_case():
        appointment = get_appointment_for(actor, appointment_id)
        rows = _waitlist_rows(matching_waitlist_entries(appointment))
        if rows:
            audit.record(
                actor,
                "waitlist.matches",
                obj=appointment,
                category=CATEGORY,
                detail=f"entries={len(rows)}",
            )
    return appointment, rows


def close_waitlist_entry(actor, entry_id: int, appointment: Appointment) -> None:
    """Mark a waitlist entry booked inside the caller's use case (flushes only).

    For the booking use case: when a "Book this slot" button carried ``waitlist_entry_id``,
    the new appointment and the entry's change land together. An entry that is not this
    patient's, or no longer waiting, is left as it is.
    """
    entry = db.session.get(WaitlistEntry, entry_id)
    if entry is None or entry.status != "waiting" or entry.patient_id != appointment.patient_id:
        return
    entry.status = "booked"
    audit.record(
        actor,
        "waitlist.booked",
        patient_id=entry.patient_id,
        obj=entry,
        category=CATEGORY,
        detail=f"appointment={appointment.id}",
    )

"""Immunizations: vaccines given here, ones from other records, and refusals.

Vaccines are coded with CDC CVX codes (``portal.terminology.cvx``). Each public function that
changes something or audits a read is one use case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select

from portal.audit import services as audit
from portal.charting.encounters.services import get_encounter_for
from portal.charting.entered_in_error.services import (
    mark_row_entered_in_error,
    patients_row,
    record_view_to_mark,
)
from portal.charting.models import IMMUNIZATION_SOURCES, Encounter, Immunization
from portal.clinic.clock import clinic_today
from portal.extensions import db
from portal.patients.models import Patient
from portal.patients.services import (
    DeathLimit,
    counts_records_dated_after,
    death_limit,
    get_patient_for,
    get_row_of_patient,
    refusal_after_death,
)
from portal.terminology.cvx import vaccine_name
from portal.transaction import Refused, use_case

CATEGORY = "immunizations"

SITES = (
    "Left deltoid",
    "Right deltoid",
    "Left thigh",
    "Right thigh",
    "Left upper arm",
    "Right upper arm",
    "Mouth",
    "Nose",
)
ROUTES = {
    "IM": "Intramuscular",
    "SC": "Subcutaneous",
    "ID": "Intradermal",
    "PO": "By mouth",
    "NS": "Intranasal",
}


def record_immunization(actor, patient_id: int, **details) -> Immunization:
    """Record a vaccine (or its refusal) in one transaction with its audit event; ``details``
    are ``_add_immunization``'s.

    With ``encounter_id`` it belongs to that visit (which must be this patient's), as a set
    of vitals taken at the visit does.
    """
    with use_case():
        return _add_immunization(actor, get_patient_for(actor, patient_id), **details)


def record_encounter_immunization(actor, encounter_id: int, **details) -> Immunization:
    """One recorded at a visit: the encounter decides the patient (404 for unknown ids)."""
    with use_case():
        encounter = get_encounter_for(actor, encounter_id)
        patient = db.session.get(Patient, encounter.patient_id)
        return _add_immunization(actor, patient, encounter_id=encounter.id, **details)


def add_immunization(actor, patient: Patient, **details) -> Immunization:
    """``record_immunization``'s work for another domain's use case (a FHIR import): check
    and add one immunization with its audit event; flushes only."""
    return _add_immunization(actor, patient, **details)


def _add_immunization(
    actor,
    patient: Patient,
    *,
    cvx_code: str,
    occurred_on: date,
    source: str = "administered",
    dose_number: int | None = None,
    lot_number: str | None = None,
    manufacturer: str | None = None,
    site: str | None = None,
    route: str | None = None,
    refused: bool = False,
    refusal_reason: str | None = None,
    encounter_id: int | None = None,
) -> Immunization:
    """Check and add one immunization (or refusal) of the patient's, with its audit event;
    flushes only."""
    if encounter_id is not None:
        get_row_of_patient(patient, Encounter, encounter_id)  # this patient's visit, or 404
    vaccine = vaccine_name(cvx_code)
    if vaccine is None:
        raise Refused("Choose a vaccine from the list.", field="cvx_code")
    if occurred_on > clinic_today():
        raise Refused("The date cannot be in the future.", field="occurred_on")
    if occurred_on < patient.birth_date:
        raise Refused("The date cannot be before the patient's birth.", field="occurred_on")
    # Given, refused or copied from another record: none of it can follow the death.
    after_death = refusal_after_death(patient, occurred_on, "An immunization")
    if after_death:
        raise Refused(after_death, field="occurred_on")
    if source not in IMMUNIZATION_SOURCES:
        raise Refused("Choose where it was given.", field="source")
    if site and site not in SITES:
        raise Refused("Choose a site from the list.", field="site")
    if route and route not in ROUTES:
        raise Refused("Choose a route from the list.", field="route")
    if refused:
        if not refusal_reason:
            raise Refused("Say why it was refused.", field="refusal_reason")
        # Nothing was given: no dose, lot, site or route belongs to a refusal.
        dose_number = lot_number = manufacturer = site = route = None
    else:
        refusal_reason = None
        if source == "administered" and not lot_number:
            raise Refused("Enter the lot number of a vaccine given here.", field="lot_number")
    immunization = Immunization(
        patient_id=patient.id,
        encounter_id=encounter_id,
        cvx_code=cvx_code,
        vaccine=vaccine,
        occurred_on=occurred_on,
        dose_number=dose_number,
        lot_number=lot_number,
        manufacturer=manufacturer,
        site=site,
        route=route,
        source=source,
        refused=refused,
        refusal_reason=refusal_reason,
        recorded_by_id=actor.id,
    )
    db.session.add(immunization)
    audit.record(
        actor,
        "immunization.refusal" if refused else "immunization.record",
        patient=patient,
        obj=immunization,
        category=CATEGORY,
        detail=f"cvx {cvx_code}; {source}"
        + (f"; encounter {encounter_id}" if encounter_id is not None else ""),
    )
    return immunization


def encounter_immunizations(encounter_id: int) -> list[Immunization]:
    """The immunizations (and refusals) recorded at this visit, in the order recorded; those
    marked entered in error are left out (the patient's immunization page still shows them).

    No audit event: the page that shows them (the encounter page, the visit summary)
    records its own view.
    """
    return list(
        db.session.scalars(
            select(Immunization)
            .where(
                Immunization.encounter_id == encounter_id,
                Immunization.entered_in_error.is_(False),
            )
            .order_by(Immunization.id)
        )
    )


def encounter_immunizations_in_error(encounter_id: int) -> int:
    """How many of this visit's immunizations were marked entered in error (the encounter
    page says so, so a record that vanished from the visit's list is not a mystery)."""
    return db.session.scalar(
        select(func.count())
        .select_from(Immunization)
        .where(
            Immunization.encounter_id == encounter_id,
            Immunization.entered_in_error.is_(True),
        )
    )


@counts_records_dated_after("immunization", "immunizations", position=2)
def dated_after(patient_id: int, day: date) -> int:
    """How many of the patient's immunizations and refusals (not marked entered in error)
    are dated after ``day``; the patient's status form warns of them when ``day`` is about
    to become the date of death. No audit: a count, shown with the form whose view is."""
    return db.session.scalar(
        select(func.count())
        .select_from(Immunization)
        .where(
            Immunization.patient_id == patient_id,
            Immunization.entered_in_error.is_(False),
            Immunization.occurred_on > day,
        )
    )


def view_immunization_to_mark(actor, patient_id: int, immunization_id: int):
    """The patient and one of their immunizations, for the "entered in error" confirmation
    page; the view is audited. Returns (patient, immunization)."""
    with use_case():
        patient, immunization = patients_row(actor, Immunization, patient_id, immunization_id)
        record_view_to_mark(
            actor, patient, immunization, action="immunization.view", category=CATEGORY
        )
    return patient, immunization


def mark_entered_in_error(
    actor, patient_id: int, immunization_id: int, reason: str
) -> Immunization:
    """Mark an immunization (or refusal) as a mistake, with why: it stays on the patient's
    immunization page, struck out with the reason, and leaves the visit's lists and the chart
    summary's count. The page asks for the reason and a ticked confirmation first; marking a
    record already marked changes nothing."""
    with use_case():
        patient, immunization = patients_row(actor, Immunization, patient_id, immunization_id)
        detail = f"cvx {immunization.cvx_code}"
        if immunization.encounter_id is not None:
            detail += f"; encounter {immunization.encounter_id}"
        return mark_row_entered_in_error(
            actor,
            patient,
            immunization,
            reason,
            thing="immunization",
            action="immunization.entered_in_error",
            category=CATEGORY,
            detail=detail,
        )


def view_immunizations(actor, patient_id: int):
    """The patient and their immunizations, newest first; the view is audited."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        rows = list(
            db.session.scalars(
                select(Immunization)
                .where(Immunization.patient_id == patient.id)
                .order_by(Immunization.occurred_on.desc(), Immunization.id.desc())
            )
        )
        audit.record(actor, "immunizations.view", patient=patient, category=CATEGORY)
    return patient, rows


def _visit_day(encounter: Encounter) -> date:
    """The day of the visit on the clinic's calendar."""
    return clinic_today(encounter.occurred_at)


@dataclass
class EncounterImmunizations:
    """An encounter's immunizations section: what was recorded at the visit, how many of
    those were marked entered in error, and (for a deceased patient) the limit on new
    entries, for the notice above the form (kept for late entries dated up to that day)."""

    encounter_id: int
    patient_id: int
    visit_day: date
    immunizations: list[Immunization]
    in_error: int
    after_death: DeathLimit | None
    visit_after_death: bool


def encounter_immunizations_section(encounter: Encounter) -> EncounterImmunizations:
    """What the encounter's immunizations section shows (no audit: the page that includes
    it records its own view)."""
    limit = death_limit(db.session.get(Patient, encounter.patient_id))
    day = _visit_day(encounter)
    return EncounterImmunizations(
        encounter_id=encounter.id,
        patient_id=encounter.patient_id,
        visit_day=day,
        immunizations=encounter_immunizations(encounter.id),
        in_error=encounter_immunizations_in_error(encounter.id),
        after_death=limit,
        visit_after_death=bool(limit and limit.deceased_on) and day > limit.deceased_on,
    )


def immunization_line(row: Immunization) -> str:
    """One immunization of a visit as the visit summary prints it (page and PDF)."""
    text = f"{row.vaccine} (CVX {row.cvx_code})"
    if row.refused:
        return f"{text}: refused ({row.refusal_reason})"
    details = [
        f"dose {row.dose_number}" if row.dose_number else None,
        f"lot {row.lot_number}" if row.lot_number else None,
        row.site.lower() if row.site else None,
        ROUTES.get(row.route, row.route).lower() if row.route else None,
        "given here" if row.source == "administered" else "from another record",
    ]
    return f"{text}, " + ", ".join(detail for detail in details if detail)

"""Immunizations: vaccines given here, ones from other records, and refusals.

Vaccines are coded with CDC CVX codes. ``CVX_VACCINES`` is a short list of the vaccines a
general practice records most; each entry is a code and a short name of our own wording.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.charting.entered_in_error import (
    mark_row_entered_in_error,
    patients_row,
    view_row_to_mark,
)
from portal.charting.models import IMMUNIZATION_SOURCES, Encounter, Immunization
from portal.clinic.services import clinic_time_zone
from portal.extensions import db
from portal.patients.services import (
    counts_records_dated_after,
    death_limit,
    get_patient_for,
    get_row_of_patient,
    refusal_after_death,
)
from portal.timeutil import to_zone, utcnow

CATEGORY = "immunizations"

CVX_VACCINES = {
    "03": "MMR (measles, mumps, rubella)",
    "94": "MMRV (measles, mumps, rubella, varicella)",
    "21": "Varicella",
    "20": "DTaP",
    "110": "DTaP, hepatitis B and IPV combined",
    "115": "Tdap",
    "113": "Td, adult, preservative free",
    "10": "IPV (polio, inactivated)",
    "48": "Hib (PRP-T)",
    "08": "Hepatitis B, paediatric or adolescent",
    "43": "Hepatitis B, adult",
    "83": "Hepatitis A, paediatric or adolescent, 2 doses",
    "52": "Hepatitis A, adult",
    "116": "Rotavirus, pentavalent",
    "119": "Rotavirus, monovalent",
    "133": "Pneumococcal conjugate (PCV13)",
    "215": "Pneumococcal conjugate (PCV15)",
    "216": "Pneumococcal conjugate (PCV20)",
    "33": "Pneumococcal polysaccharide (PPSV23)",
    "62": "HPV, quadrivalent",
    "165": "HPV, 9-valent",
    "114": "Meningococcal ACWY (MenACWY-D)",
    "136": "Meningococcal ACWY (MenACWY-CRM)",
    "162": "Meningococcal B, recombinant",
    "141": "Influenza, seasonal, injectable",
    "150": "Influenza, injectable, quadrivalent, preservative free",
    "158": "Influenza, injectable, quadrivalent",
    "88": "Influenza, unspecified formulation",
    "187": "Zoster, recombinant",
    "208": "COVID-19, mRNA (Pfizer-BioNTech, 30 mcg)",
    "207": "COVID-19, mRNA (Moderna, 100 mcg)",
    "213": "COVID-19, unspecified formulation",
    "37": "Yellow fever",
    "101": "Typhoid, ViCPs injectable",
    "18": "Rabies, intramuscular",
}
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


class ImmunizationError(Exception):
    """A refused entry; ``field`` names the form field to show the message beside."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def _clinic_today() -> date:
    return to_zone(utcnow(), clinic_time_zone()).date()


def record_immunization(
    actor,
    patient_id: int,
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
    """Record a vaccine (or its refusal) in one transaction with its audit event.

    With ``encounter_id`` it belongs to that visit (which must be this patient's), as a set
    of vitals taken at the visit does.
    """
    patient = get_patient_for(actor, patient_id)
    if encounter_id is not None:
        get_row_of_patient(patient, Encounter, encounter_id)  # this patient's visit, or 404
    if cvx_code not in CVX_VACCINES:
        raise ImmunizationError("Choose a vaccine from the list.", field="cvx_code")
    if occurred_on > _clinic_today():
        raise ImmunizationError("The date cannot be in the future.", field="occurred_on")
    if occurred_on < patient.birth_date:
        raise ImmunizationError(
            "The date cannot be before the patient's birth.", field="occurred_on"
        )
    # Given, refused or copied from another record: none of it can follow the death.
    after_death = refusal_after_death(patient, occurred_on, "An immunization")
    if after_death:
        raise ImmunizationError(after_death, field="occurred_on")
    if source not in IMMUNIZATION_SOURCES:
        raise ImmunizationError("Choose where it was given.", field="source")
    if site and site not in SITES:
        raise ImmunizationError("Choose a site from the list.", field="site")
    if route and route not in ROUTES:
        raise ImmunizationError("Choose a route from the list.", field="route")
    if refused:
        if not refusal_reason:
            raise ImmunizationError("Say why it was refused.", field="refusal_reason")
        # Nothing was given: no dose, lot, site or route belongs to a refusal.
        dose_number = lot_number = manufacturer = site = route = None
    else:
        refusal_reason = None
        if source == "administered" and not lot_number:
            raise ImmunizationError(
                "Enter the lot number of a vaccine given here.", field="lot_number"
            )
    immunization = Immunization(
        patient_id=patient.id,
        encounter_id=encounter_id,
        cvx_code=cvx_code,
        vaccine=CVX_VACCINES[cvx_code],
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
    db.session.commit()
    return immunization


def record_encounter_immunization(actor, encounter_id: int, **details) -> Immunization:
    """One recorded at a visit: the encounter decides the patient (404 for unknown ids)."""
    encounter = db.session.get(Encounter, encounter_id)
    if encounter is None:
        raise NotFound()
    return record_immunization(actor, encounter.patient_id, encounter_id=encounter.id, **details)


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
    return view_row_to_mark(
        actor,
        Immunization,
        patient_id,
        immunization_id,
        action="immunization.view",
        category=CATEGORY,
    )


def mark_entered_in_error(
    actor, patient_id: int, immunization_id: int, reason: str
) -> Immunization:
    """Mark an immunization (or refusal) as a mistake, with why: it stays on the patient's
    immunization page, struck out with the reason, and leaves the visit's lists and the chart
    summary's count. The page asks for the reason and a ticked confirmation first; marking a
    record already marked changes nothing."""
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
        refuse=lambda message: ImmunizationError(message, "reason"),
        action="immunization.entered_in_error",
        category=CATEGORY,
        detail=detail,
    )


def view_immunizations(actor, patient_id: int):
    """The patient and their immunizations, newest first; the view is audited."""
    patient = get_patient_for(actor, patient_id)
    rows = list(
        db.session.scalars(
            select(Immunization)
            .where(Immunization.patient_id == patient.id)
            .order_by(Immunization.occurred_on.desc(), Immunization.id.desc())
        )
    )
    audit.record(actor, "immunizations.view", patient=patient, category=CATEGORY)
    db.session.commit()
    return patient, rows


def _visit_day(encounter: Encounter) -> date:
    return to_zone(encounter.occurred_at, clinic_time_zone()).date()


def encounter_immunization_form(encounter: Encounter, formdata=None, limit=None):
    """The encounter page's immunization form: prefixed (the page holds other forms), its
    date set to the day of the visit until the user types another, unless that day is after
    a recorded death (``limit``): a date that would be refused is left for the user to give.
    """
    from portal.charting.vitals_forms import ImmunizationForm

    if formdata is not None:
        return ImmunizationForm(formdata=formdata, prefix="immunization", meta={"csrf": False})
    day = _visit_day(encounter)
    return ImmunizationForm(
        formdata=None,
        prefix="immunization",
        meta={"csrf": False},  # CSRFProtect checks every POST; the page sends its token
        data={"occurred_on": day} if limit is None or limit.allows(day) else None,
    )


def encounter_immunizations_context(encounter: Encounter, form=None) -> dict:
    """What `charting/_encounter_immunizations.html` needs (no audit: see above).

    For a deceased patient, ``immunizations_after_death`` carries the date of death for the
    notice above the form (kept for late entries dated up to that day).
    """
    from portal.patients.models import Patient

    limit = death_limit(db.session.get(Patient, encounter.patient_id))
    return {
        "immunizations_encounter_id": encounter.id,
        "immunizations_patient_id": encounter.patient_id,
        "encounter_immunizations": encounter_immunizations(encounter.id),
        "encounter_immunizations_in_error": encounter_immunizations_in_error(encounter.id),
        "immunization_form": form
        if form is not None
        else encounter_immunization_form(encounter, limit=limit),
        "immunization_sources": IMMUNIZATION_SOURCES,
        "immunization_routes": ROUTES,
        "immunizations_after_death": limit,
        "immunizations_visit_after_death": bool(limit and limit.deceased_on)
        and _visit_day(encounter) > limit.deceased_on,
    }

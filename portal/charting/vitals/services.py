"""Vital signs: entry in the clinic's units, canonical storage, checks, abnormal flags.

Values are typed in the units the clinic chose (°F or °C, lb or kg, in or cm), converted to
the canonical UCUM units of ``VitalSigns`` (Cel, kg, cm; ``portal.terminology.ucum``) and
shown back in the clinic's units.

Every check is stated once, in ``MEASURES`` (what is impossible, what is implausible) and
``AGE_BANDS`` (what is abnormal for the patient's age). A set with an impossible value is
refused (``ImpossibleValues``, every field at once); one with an implausible value is saved
only once the user confirms it (``NeedsConfirmation``). Each public function that changes
something or audits a read is one use case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update

from portal.audit import services as audit
from portal.charting.encounters.services import get_encounter_for, on_visit_started
from portal.charting.entered_in_error.services import (
    mark_row_entered_in_error,
    patients_row,
    record_view_to_mark,
)
from portal.charting.models import BP_POSITIONS, Encounter, VitalSigns
from portal.clinic.clock import clinic_today, clinic_zone, day_bounds
from portal.clinic.services import current_clinic
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
from portal.scheduling.models import Appointment
from portal.terminology.ucum import (
    INCH_CM,
    POUND_KG,
    format_value,
    from_canonical,
    symbol,
    to_canonical,
)
from portal.timeutil import age_on, utcnow
from portal.transaction import Refused, use_case

CATEGORY = "vital signs"
PAGE_SIZE = 25
# How far ahead of the server's clock a typed time may be (clocks on wall and PC differ).
FUTURE_TOLERANCE = timedelta(minutes=5)
# The statuses of an appointment whose visit is under way: a set recorded on the patient's
# page then belongs to that visit (a nurse rooming the patient records it there).
VISIT_UNDER_WAY = ("arrived", "roomed", "with_provider")
# Head circumference is measured, and asked for, up to this age (whole years).
HEAD_CIRCUMFERENCE_UNDER_YEARS = 3

# --- units ---------------------------------------------------------------------------------


def clinic_units() -> dict[str, str]:
    """The UCUM unit the clinic types and reads each quantity in."""
    clinic = current_clinic()
    return {
        "temperature": clinic.temperature_unit if clinic else "[degF]",
        "weight": clinic.weight_unit if clinic else "[lb_av]",
        "length": clinic.length_unit if clinic else "[in_i]",
    }


# --- what is impossible, implausible, abnormal ----------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One measurement of a set: its form field, column, unit, and the limits it must meet.

    ``impossible``: outside it the value cannot be real (refused). ``plausible``: outside it
    the value is possible but unusual enough to be a typing slip (saved once confirmed).
    Both in the canonical unit. ``quantity`` names the clinic unit the value is typed in,
    or None when the unit is fixed (``unit``).
    """

    name: str
    label: str
    column: str
    unit: str
    impossible: tuple[float, float]
    plausible: tuple[float, float]
    whole: bool = False
    quantity: str | None = None


# The one table of limits (canonical units). Reasons for the bounds: the impossible ones lie
# beyond any value recorded in a living person (systolic 400, a 60 °C temperature, SpO2 above
# 100 %); the plausible ones enclose what a general practice sees, from newborns to adults.
MEASURES: tuple[Measure, ...] = (
    Measure("systolic", "Systolic", "systolic_mmhg", "mm[Hg]", (20, 300), (60, 230), True),
    Measure("diastolic", "Diastolic", "diastolic_mmhg", "mm[Hg]", (10, 200), (30, 140), True),
    Measure("heart_rate", "Heart rate", "heart_rate_per_min", "/min", (10, 350), (35, 220), True),
    Measure(
        "respiratory_rate",
        "Respiratory rate",
        "respiratory_rate_per_min",
        "/min",
        (2, 120),
        (6, 80),
        True,
    ),
    Measure(
        "temperature",
        "Temperature",
        "temperature_cel",
        "Cel",
        (25, 45),
        (33, 42),
        quantity="temperature",
    ),
    Measure("spo2", "SpO₂", "spo2_percent", "%", (20, 100), (70, 100), True),
    Measure("weight", "Weight", "weight_kg", "kg", (0.2, 650), (1, 300), quantity="weight"),
    Measure("height", "Height", "height_cm", "cm", (20, 280), (40, 230), quantity="length"),
    Measure("pain_score", "Pain (0-10)", "pain_score", "{score}", (0, 10), (0, 10), True),
    Measure(
        "head_circumference",
        "Head circumference",
        "head_circumference_cm",
        "cm",
        (20, 70),
        (28, 60),
        quantity="length",
    ),
)
MEASURES_BY_NAME = {measure.name: measure for measure in MEASURES}
# BMI is computed, not typed: an implausible one usually means a slip in weight or height.
BMI_PLAUSIBLE = (10.0, 80.0)

# Normal ranges by age (whole years at the time of measurement), for the abnormal flags and
# the shaded band of the trend charts: (under this age, label, heart rate, respiratory rate,
# systolic, diastolic). Diastolic flags for adolescents and adults only; children's diastolic
# norms depend on height percentiles. Paediatric bands follow the common PALS-style tables.
AGE_BANDS = (
    (1, "under 1 year", (100, 160), (30, 60), (70, 100), None),
    (3, "1-2 years", (90, 150), (24, 40), (80, 110), None),
    (6, "3-5 years", (80, 140), (22, 34), (80, 110), None),
    (12, "6-11 years", (70, 120), (18, 30), (85, 120), None),
    (18, "12-17 years", (60, 100), (12, 20), (90, 129), (60, 79)),
    (None, "adult", (60, 100), (12, 20), (90, 129), (60, 79)),
)
# The same at every age: below 35.0 °C is hypothermia, 38.0 °C and above is fever.
TEMPERATURE_NORMAL = (35.0, 37.9)
SPO2_NORMAL = (95, 100)
ADULT_BMI_NORMAL = (18.5, 24.9)  # children's BMI needs percentiles: no flag


def normal_ranges(age_years: int) -> dict[str, tuple[float, float]]:
    """Field name -> (low, high) normal range (canonical units) for a patient of this age."""
    for under, _label, heart, breathing, systolic, diastolic in AGE_BANDS:
        if under is None or age_years < under:
            ranges = {
                "heart_rate": heart,
                "respiratory_rate": breathing,
                "systolic": systolic,
                "temperature": TEMPERATURE_NORMAL,
                "spo2": SPO2_NORMAL,
            }
            if diastolic:
                ranges["diastolic"] = diastolic
            if under is None:
                ranges["bmi"] = ADULT_BMI_NORMAL
            return ranges
    raise AssertionError("the last band has no upper age")


@dataclass(frozen=True)
class Flag:
    """An abnormal value: ``level`` (high/low) for the colour, ``text`` said in words."""

    level: str
    text: str


def flag_for(name: str, value: float | None, age_years: int) -> Flag | None:
    """The flag of a canonical value for a patient of this age, or None when it is normal."""
    bounds = normal_ranges(age_years).get(name)
    if value is None or bounds is None:
        return None
    low, high = bounds
    if value < low:
        return Flag("low", "Low")
    if value > high:
        return Flag("high", "Fever" if name == "temperature" else "High")
    return None


# --- parsing and checking a set -------------------------------------------------------------

_NUMBER = re.compile(r"^-?\d{1,6}(\.\d{1,3})?$")


class InvalidNumber(ValueError):
    """Text that is not a measurement; the message says what to type."""


def parse_measurement(text: str | None, *, whole: bool) -> float | None:
    """The number typed in a field (None when blank); InvalidNumber with a message otherwise."""
    text = (text or "").strip()
    if not text:
        return None
    if not _NUMBER.match(text):
        raise InvalidNumber("Enter a number, such as 98.6." if not whole else "Enter a number.")
    value = float(text)
    if value < 0:
        raise InvalidNumber("A measurement cannot be negative.")
    if whole and value != int(value):
        raise InvalidNumber("Enter a whole number.")
    return value


class ImpossibleValues(Refused):
    """Impossible values: ``errors`` maps form fields to the message to show beside each
    (all of them at once, not the first alone)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class NeedsConfirmation(Refused):
    """Implausible values: ``warnings`` maps fields to the message; saved once confirmed."""

    def __init__(self, warnings: dict[str, str]):
        super().__init__("; ".join(warnings.values()))
        self.warnings = warnings


def _unit_of(measure: Measure, units: dict[str, str]) -> str:
    return units[measure.quantity] if measure.quantity else measure.unit


def _shown_limit(value: float, measure: Measure, units: dict[str, str]) -> str:
    unit = _unit_of(measure, units)
    shown = from_canonical(value, unit) if measure.quantity else value
    return format_value(shown, unit)


def compute_bmi(weight_kg: float | None, height_cm: float | None) -> float | None:
    """Body-mass index (kg/m²) to one decimal, when both are known."""
    if not weight_kg or not height_cm:
        return None
    return round(weight_kg / (height_cm / 100) ** 2, 1)


def check_measurements(
    entered: dict[str, float | None],
    units: dict[str, str],
    *,
    age_years: int,
    confirmed: bool,
) -> dict[str, float | int | None]:
    """Typed values (clinic units) -> column values (canonical), or the reason they can't be.

    Raises ImpossibleValues for impossible values (all of them at once, field by field) and
    NeedsConfirmation for implausible ones unless ``confirmed``.
    """
    errors: dict[str, str] = {}
    warnings: dict[str, str] = {}
    canonical: dict[str, float | None] = {}
    for measure in MEASURES:
        value = entered.get(measure.name)
        if value is None:
            continue
        if measure.name == "head_circumference" and age_years >= HEAD_CIRCUMFERENCE_UNDER_YEARS:
            errors[measure.name] = "Head circumference is recorded for children under 3 only."
            continue
        value = to_canonical(value, _unit_of(measure, units)) if measure.quantity else value
        low, high = measure.impossible
        if not low <= value <= high:
            errors[measure.name] = (
                f"{measure.label} must be between {_shown_limit(low, measure, units)} and "
                f"{_shown_limit(high, measure, units)}."
            )
            continue
        canonical[measure.name] = int(value) if measure.whole else value
        low, high = measure.plausible
        if not low <= value <= high:
            warnings[measure.name] = (
                f"{measure.label} is unusual (expected {_shown_limit(low, measure, units)} to "
                f"{_shown_limit(high, measure, units)}): check it."
            )
    systolic, diastolic = canonical.get("systolic"), canonical.get("diastolic")
    if systolic is not None and diastolic is not None and diastolic >= systolic:
        errors["diastolic"] = "Diastolic must be lower than systolic."
    if (systolic is None) != (diastolic is None) and not errors.keys() & {"systolic", "diastolic"}:
        missing = "diastolic" if diastolic is None else "systolic"
        errors[missing] = "Enter both numbers of the blood pressure."
    if not entered or all(value is None for value in entered.values()):
        errors["form"] = "Enter at least one measurement."
    if errors:
        raise ImpossibleValues(errors)
    bmi = compute_bmi(canonical.get("weight"), canonical.get("height"))
    if bmi is not None and not BMI_PLAUSIBLE[0] <= bmi <= BMI_PLAUSIBLE[1]:
        note = f"That makes a BMI of {bmi}: check weight and height."
        warnings["height"] = f"{warnings['height']} {note}" if "height" in warnings else note
    if warnings and not confirmed:
        raise NeedsConfirmation(warnings)
    columns = {MEASURES_BY_NAME[name].column: value for name, value in canonical.items()}
    columns["bmi"] = bmi
    return columns


def age_at(birth_date: date, moment: datetime) -> int:
    """Whole years of age at ``moment``, on the clinic's calendar."""
    return age_on(birth_date, clinic_today(moment))


def _check_taken_at(taken_at: datetime, patient) -> None:
    if taken_at > utcnow() + FUTURE_TOLERANCE:
        raise Refused("The time cannot be in the future.", "taken_at")
    day = clinic_today(taken_at)
    if day < patient.birth_date:
        raise Refused("The time cannot be before the patient's birth.", "taken_at")
    # "Taken at" left blank means now: for a deceased patient that is after the death, and
    # the message beside the field asks for the time the set was really taken.
    after_death = refusal_after_death(patient, day, "Vital signs")
    if after_death:
        raise Refused(after_death, "taken_at")


# --- use cases ------------------------------------------------------------------------------


def record_vitals(
    actor,
    patient_id: int,
    entered: dict[str, float | None],
    *,
    bp_position: str | None = None,
    taken_at: datetime | None = None,
    encounter_id: int | None = None,
    confirmed: bool = False,
) -> VitalSigns:
    """Check and store one set typed in the clinic's units; audited in the same transaction.

    With ``encounter_id`` the set belongs to that visit (which must be this patient's).
    Without it, a set taken on the day of a visit under way (checked in, roomed, with the
    provider) whose encounter is open belongs to that visit; one taken before anyone
    pressed "Start visit" is adopted by the visit when it starts (``adopt_rooming_vitals``).
    """
    with use_case():
        patient = get_patient_for(actor, patient_id)
        if encounter_id is None:
            encounter_id = _visit_under_way(patient.id, taken_at or utcnow())
        return _add_vitals(
            actor,
            patient,
            entered,
            bp_position=bp_position,
            taken_at=taken_at,
            encounter_id=encounter_id,
            confirmed=confirmed,
        )


def _visit_under_way(patient_id: int, taken_at: datetime) -> int | None:
    """The encounter of the patient's appointment under way on the clinic day of
    ``taken_at`` (the latest started, if two), or None."""
    start, end = day_bounds(clinic_today(taken_at))
    return db.session.scalar(
        select(Encounter.id)
        .join(Appointment, Appointment.id == Encounter.appointment_id)
        .where(
            Encounter.patient_id == patient_id,
            Appointment.patient_id == patient_id,
            Appointment.status.in_(VISIT_UNDER_WAY),
            Appointment.starts_at >= start,
            Appointment.starts_at < end,
        )
        .order_by(Encounter.occurred_at.desc(), Encounter.id.desc())
        .limit(1)
    )


@on_visit_started
def adopt_rooming_vitals(actor, encounter: Encounter, now: datetime) -> None:
    """A visit started from an appointment takes the sets its patient had taken that clinic
    day outside any visit (at rooming, before "Start visit"): the visit's page, its summary
    and its PDF show them. Flushes only; audited (ids only) when there were any."""
    start, end = day_bounds(clinic_today(now))
    adopted = db.session.scalars(
        select(VitalSigns.id).where(
            VitalSigns.patient_id == encounter.patient_id,
            VitalSigns.encounter_id.is_(None),
            VitalSigns.taken_at >= start,
            VitalSigns.taken_at < end,
        )
    ).all()
    if not adopted:
        return
    db.session.execute(
        update(VitalSigns)
        .where(VitalSigns.id.in_(adopted), VitalSigns.encounter_id.is_(None))
        .values(encounter_id=encounter.id)
        .execution_options(synchronize_session=False)
    )
    audit.record(
        actor,
        "vitals.attach",
        patient_id=encounter.patient_id,
        obj=encounter,
        category=CATEGORY,
        detail=f"{len(adopted)} set(s) taken before the visit started; encounter {encounter.id}",
    )


def record_encounter_vitals(actor, encounter_id: int, entered, **options) -> VitalSigns:
    """A set taken at a visit: the encounter decides the patient (404 for unknown ids)."""
    with use_case():
        encounter = get_encounter_for(actor, encounter_id)
        patient = db.session.get(Patient, encounter.patient_id)
        return _add_vitals(actor, patient, entered, encounter_id=encounter.id, **options)


def add_vitals(actor, patient: Patient, entered: dict[str, float | None], **options):
    """``record_vitals``' work for another domain's use case (a FHIR import): check and add
    one set, with its audit event; flushes only. ``units`` (quantity -> UCUM unit) says
    what ``entered`` is in when it is not the clinic's units."""
    return _add_vitals(actor, patient, entered, **options)


def _add_vitals(
    actor,
    patient: Patient,
    entered: dict[str, float | None],
    *,
    bp_position: str | None = None,
    taken_at: datetime | None = None,
    encounter_id: int | None = None,
    confirmed: bool = False,
    units: dict[str, str] | None = None,
) -> VitalSigns:
    """Check and add one set of the patient's, with its audit event; flushes only."""
    if encounter_id is not None:
        get_row_of_patient(patient, Encounter, encounter_id)  # this patient's visit, or 404
    taken_at = taken_at or utcnow()
    _check_taken_at(taken_at, patient)
    if bp_position and bp_position not in BP_POSITIONS:
        raise Refused("Choose a position from the list.", "bp_position")
    columns = check_measurements(
        entered,
        units or clinic_units(),
        age_years=age_at(patient.birth_date, taken_at),
        confirmed=confirmed,
    )
    vitals = VitalSigns(
        patient_id=patient.id,
        encounter_id=encounter_id,
        taken_at=taken_at,
        recorded_by_id=actor.id,
        bp_position=bp_position if columns.get("systolic_mmhg") is not None else None,
        **columns,
    )
    db.session.add(vitals)
    recorded = sorted(name for name, value in entered.items() if value is not None)
    detail = f"fields: {','.join(recorded)}"
    if encounter_id is not None:
        detail += f"; encounter {encounter_id}"
    if confirmed:
        detail += "; unusual values confirmed"
    audit.record(
        actor, "vitals.record", patient=patient, obj=vitals, category=CATEGORY, detail=detail
    )
    return vitals


def view_set_to_mark(actor, patient_id: int, vitals_id: int):
    """The patient and one of their sets, shown on the "entered in error" confirmation page;
    the view is audited. Returns (patient, the set as shown, the row)."""
    with use_case():
        patient, vitals = patients_row(actor, VitalSigns, patient_id, vitals_id)
        record_view_to_mark(actor, patient, vitals, action="vitals.view", category=CATEGORY)
    return patient, show_set(vitals, clinic_units(), patient.birth_date), vitals


def mark_entered_in_error(actor, patient_id: int, vitals_id: int, reason: str) -> VitalSigns:
    """Mark a set as a mistake, with why: it stays in the record, struck out, and leaves the
    charts. The page asks for the reason and a ticked confirmation first; marking a set
    already marked changes nothing."""
    with use_case():
        patient, vitals = patients_row(actor, VitalSigns, patient_id, vitals_id)
        return mark_row_entered_in_error(
            actor,
            patient,
            vitals,
            reason,
            thing="set",
            action="vitals.entered_in_error",
            category=CATEGORY,
        )


@counts_records_dated_after("set of vital signs", "sets of vital signs", position=1)
def sets_dated_after(patient_id: int, day: date) -> int:
    """How many of the patient's sets (not marked entered in error) were taken after ``day``
    on the clinic's calendar; the patient's status form warns of them when ``day`` is about
    to become the date of death. No audit: a count, shown with the form whose view is."""
    _start, next_midnight = day_bounds(day)
    return db.session.scalar(
        select(func.count())
        .select_from(VitalSigns)
        .where(
            VitalSigns.patient_id == patient_id,
            VitalSigns.entered_in_error.is_(False),
            VitalSigns.taken_at >= next_midnight,
        )
    )


# --- showing sets ---------------------------------------------------------------------------


@dataclass
class ShownValue:
    """A value as shown: its text in the clinic's unit and its abnormal flag, if any."""

    text: str
    flag: Flag | None = None


@dataclass
class ShownSet:
    """One set as the tables show it: texts in the clinic's units, flags for the age."""

    id: int
    taken_at: datetime
    encounter_id: int | None
    entered_in_error: bool
    values: dict[str, ShownValue] = field(default_factory=dict)
    entered_in_error_reason: str | None = None


def show_value(name: str, value, units: dict[str, str], age_years: int) -> ShownValue | None:
    """A canonical value as text in the clinic's unit, with its flag (None when absent)."""
    if value is None:
        return None
    if name == "bmi":
        return ShownValue(format_value(value, "kg/m2"), flag_for("bmi", value, age_years))
    measure = MEASURES_BY_NAME[name]
    unit = _unit_of(measure, units)
    shown = from_canonical(value, unit) if measure.quantity else value
    return ShownValue(format_value(shown, unit), flag_for(name, value, age_years))


def show_set(row: VitalSigns, units: dict[str, str], birth_date: date) -> ShownSet:
    """One stored set as the tables show it, in ``units``, flagged for the age it was taken at."""
    age = age_at(birth_date, row.taken_at)
    shown = ShownSet(
        row.id,
        row.taken_at,
        row.encounter_id,
        row.entered_in_error,
        entered_in_error_reason=row.entered_in_error_reason,
    )
    for measure in MEASURES:
        value = show_value(measure.name, getattr(row, measure.column), units, age)
        if value is not None:
            shown.values[measure.name] = value
    if row.bmi is not None:
        shown.values["bmi"] = show_value("bmi", row.bmi, units, age)
    if row.systolic_mmhg is not None and row.diastolic_mmhg is not None:
        shown.values["bp"] = ShownValue(f"{row.systolic_mmhg}/{row.diastolic_mmhg} mmHg")
    if row.bp_position and "systolic" in shown.values:
        shown.values["bp_position"] = ShownValue(BP_POSITIONS[row.bp_position])
    return shown


def unit_symbols() -> dict[str, str]:
    """Field name -> the unit symbol shown beside its input, in the clinic's units."""
    units = clinic_units()
    return {m.name: symbol(_unit_of(m, units)) for m in MEASURES}


def shows_head_circumference(birth_date: date) -> bool:
    """Whether the form asks for head circumference: for children under 3 only."""
    return age_at(birth_date, utcnow()) < HEAD_CIRCUMFERENCE_UNDER_YEARS


def view_patient_vitals(actor, patient_id: int, page: int = 1):
    """The patient and one page of their sets, newest first; the view is audited.

    Returns (patient, shown sets, whether an older page exists).
    """
    page = max(page, 1)
    with use_case():
        patient = get_patient_for(actor, patient_id)
        rows = list(
            db.session.scalars(
                select(VitalSigns)
                .where(VitalSigns.patient_id == patient.id)
                .order_by(VitalSigns.taken_at.desc(), VitalSigns.id.desc())
                .offset((page - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE + 1)
            )
        )
        units = clinic_units()
        shown = [show_set(row, units, patient.birth_date) for row in rows[:PAGE_SIZE]]
        audit.record(
            actor, "vitals.view", patient=patient, category=CATEGORY, detail=f"page {page}"
        )
    return patient, shown, len(rows) > PAGE_SIZE


@dataclass
class EncounterVitals:
    """The sets taken at a visit, and what the form of the visit's section needs to know.

    For a deceased patient ``after_death`` is the limit of what may still be recorded (late
    entries), and ``prefill_taken_at`` the visit's time when the visit was on or before the
    day of death: left blank "Taken at" would mean now, which is after the death.
    """

    encounter_id: int
    patient_id: int
    sets: list[ShownSet]
    show_head_circumference: bool
    after_death: DeathLimit | None
    prefill_taken_at: datetime | None
    visit_after_death: bool


def encounter_vitals(encounter: Encounter) -> EncounterVitals:
    """The sets of an encounter's vitals section, newest first, with the checks its form
    needs. No audit event: the page that includes the section records its own view."""
    patient = db.session.get(Patient, encounter.patient_id)
    rows = db.session.scalars(
        select(VitalSigns)
        .where(VitalSigns.encounter_id == encounter.id)
        .order_by(VitalSigns.taken_at.desc(), VitalSigns.id.desc())
    )
    units = clinic_units()
    limit = death_limit(patient)
    visit_time = encounter.occurred_at.astimezone(clinic_zone()).replace(
        tzinfo=None, second=0, microsecond=0
    )
    return EncounterVitals(
        encounter_id=encounter.id,
        patient_id=encounter.patient_id,
        sets=[show_set(row, units, patient.birth_date) for row in rows],
        show_head_circumference=shows_head_circumference(patient.birth_date),
        after_death=limit,
        prefill_taken_at=visit_time if limit and limit.allows(visit_time.date()) else None,
        visit_after_death=bool(limit and limit.deceased_on)
        and visit_time.date() > limit.deceased_on,
    )


# --- the chart summary's latest values ------------------------------------------------------

# The vitals the summary lists, in order, with the chart each one's sparkline comes from.
LATEST_VITALS = (
    ("systolic", "bp"),
    ("heart_rate", "heart-rate"),
    ("respiratory_rate", "respiratory-rate"),
    ("temperature", "temperature"),
    ("spo2", "spo2"),
    ("weight", "weight"),
    ("height", "height"),
    ("bmi", "bmi"),
    ("pain_score", "pain"),
)
LATEST_ROWS = 30  # the recent sets looked at: enough for every vital taken at most visits


@dataclass
class LatestValue:
    """The latest value of one vital for the chart summary, with its chart and date."""

    name: str
    label: str
    chart: str
    value: ShownValue
    taken_at: datetime


def latest_vitals_context(patient_id: int) -> dict:
    """The latest value of each vital (with its date and flag), for the chart summary.

    One query over the most recent sets (entered-in-error ones left out); the sparklines are
    images the browser fetches (``charting.vitals_sparkline``), so this stays cheap. The
    caller has loaded the patient through ``get_patient_for`` and audits the page view.
    """
    birth_date = db.session.scalar(select(Patient.birth_date).where(Patient.id == patient_id))
    rows = db.session.scalars(
        select(VitalSigns)
        .where(VitalSigns.patient_id == patient_id, VitalSigns.entered_in_error.is_(False))
        .order_by(VitalSigns.taken_at.desc(), VitalSigns.id.desc())
        .limit(LATEST_ROWS)
    ).all()
    units = clinic_units()
    latest: list[LatestValue] = []
    for name, chart in LATEST_VITALS:
        column = "bmi" if name == "bmi" else MEASURES_BY_NAME[name].column
        row = next((row for row in rows if getattr(row, column) is not None), None)
        if row is None:
            continue
        age = age_at(birth_date, row.taken_at)
        if name == "systolic":
            shown = ShownValue(
                f"{row.systolic_mmhg}/{row.diastolic_mmhg} mmHg",
                flag_for("systolic", row.systolic_mmhg, age)
                or flag_for("diastolic", row.diastolic_mmhg, age),
            )
            label = "Blood pressure"
        else:
            shown = show_value(name, getattr(row, column), units, age)
            label = "BMI" if name == "bmi" else MEASURES_BY_NAME[name].label
        latest.append(LatestValue(name, label, chart, shown, row.taken_at))
    return {"latest_vitals": latest, "latest_vitals_patient_id": patient_id}


# --- the visit summary ----------------------------------------------------------------------


def vital_sign_items(vitals: VitalSigns, clinic=None) -> list[tuple[str, str]]:
    """(label, value) of each vital sign recorded in the set, in the clinic's units, as the
    visit summary prints them (page and PDF).

    Stored values are canonical UCUM (Cel, kg, cm); the clinic chooses °F/lb/in or °C/kg/cm.
    """
    fahrenheit = clinic is None or clinic.temperature_unit == "[degF]"
    pounds = clinic is None or clinic.weight_unit == "[lb_av]"
    inches = clinic is None or clinic.length_unit == "[in_i]"

    def length(cm):
        return f"{cm / INCH_CM:.1f} in" if inches else f"{cm:.1f} cm"

    items = []
    if vitals.systolic_mmhg is not None and vitals.diastolic_mmhg is not None:
        position = f" ({vitals.bp_position})" if vitals.bp_position else ""
        items.append(
            ("Blood pressure", f"{vitals.systolic_mmhg}/{vitals.diastolic_mmhg} mmHg{position}")
        )
    if vitals.heart_rate_per_min is not None:
        items.append(("Heart rate", f"{vitals.heart_rate_per_min} /min"))
    if vitals.respiratory_rate_per_min is not None:
        items.append(("Respiratory rate", f"{vitals.respiratory_rate_per_min} /min"))
    if vitals.temperature_cel is not None:
        celsius = vitals.temperature_cel
        items.append(
            (
                "Temperature",
                f"{celsius * 9 / 5 + 32:.1f} °F" if fahrenheit else f"{celsius:.1f} °C",
            )
        )
    if vitals.spo2_percent is not None:
        items.append(("SpO₂", f"{vitals.spo2_percent} %"))
    if vitals.weight_kg is not None:
        kg = vitals.weight_kg
        items.append(("Weight", f"{kg / POUND_KG:.1f} lb" if pounds else f"{kg:.1f} kg"))
    if vitals.height_cm is not None:
        items.append(("Height", length(vitals.height_cm)))
    if vitals.bmi is not None:
        items.append(("BMI", f"{vitals.bmi:.1f} kg/m²"))
    if vitals.pain_score is not None:
        items.append(("Pain", f"{vitals.pain_score}/10"))
    if vitals.head_circumference_cm is not None:
        items.append(("Head circumference", length(vitals.head_circumference_cm)))
    return items

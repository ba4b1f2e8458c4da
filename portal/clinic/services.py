"""Reading and changing the clinic's settings.

Each changing function is one use case: the change and its audit event commit together.
Validation of the values that every page depends on (the time zone, phone numbers) lives here,
so no caller can store a zone that would break the rendering of times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from flask import current_app, g, has_app_context
from sqlalchemy import func, select
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.clinic.models import Clinic, Location
from portal.extensions import db
from portal.transaction import Refused, use_case

FALLBACK_TIME_ZONE = "America/New_York"
CATEGORY = "clinic settings"


def current_clinic() -> Clinic | None:
    """The installation's clinic (one per installation), cached for the request."""
    if has_app_context() and "clinic" in g:
        return g.clinic
    clinic = db.session.scalars(select(Clinic).order_by(Clinic.id).limit(1)).first()
    if has_app_context():
        g.clinic = clinic
    return clinic


def _forget_cached_clinic() -> None:
    if has_app_context():
        g.pop("clinic", None)
        current_app.extensions.pop(_DISPLAY_CACHE, None)


@dataclass(frozen=True)
class ClinicDisplay:
    """What every page needs of the clinic: its name and its time zone."""

    name: str
    time_zone: str
    date_order: str = "mdy"  # how staff type dates (see Clinic.date_order)
    prescribing_path: str = "portal"  # where "Prescribe" leads (see Clinic.prescribing_path)


_DISPLAY_CACHE = "portal.clinic_display"
_DISPLAY_QUERY = (
    select(Clinic.name, Clinic.time_zone, Clinic.date_order, Clinic.prescribing_path)
    .order_by(Clinic.id)
    .limit(1)
)


def clinic_display() -> ClinicDisplay:
    """The clinic's name and zone, read at most every ``CLINIC_DISPLAY_SECONDS`` per process.

    Every page shows the name and every time on it is in the zone: a query per page for
    two values that change once in a clinic's life would be a tenth of a page's cost. A
    change made here is seen at once (``_forget_cached_clinic``); another process (another
    gunicorn worker or host) sees it within the interval.
    """
    cached = current_app.extensions.get(_DISPLAY_CACHE)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    row = db.session.execute(_DISPLAY_QUERY).first()
    display = (
        ClinicDisplay(row.name, row.time_zone, row.date_order, row.prescribing_path)
        if row
        else ClinicDisplay("Practice Portal", FALLBACK_TIME_ZONE)
    )
    seconds = current_app.config["CLINIC_DISPLAY_SECONDS"]
    current_app.extensions[_DISPLAY_CACHE] = (now + seconds, display)
    return display


def clinic_time_zone() -> str:
    return clinic_display().time_zone


def clinic_name() -> str:
    return clinic_display().name


def prescribing_path() -> str:
    """Where "Prescribe" leads in this clinic: "portal" (the default) or "vendor" (the
    e-prescribing service's embedded screen)."""
    return clinic_display().prescribing_path


def clinic_reads_day_first() -> bool:
    """Whether staff type 02/03/1980 for 2 March (the clinic's date order is "dmy")."""
    return clinic_display().date_order == "dmy"


def valid_time_zone(name: str) -> str:
    """The zone's name if it is a real IANA zone, else Refused."""
    name = (name or "").strip()
    if name not in available_timezones():
        raise Refused("Choose a time zone from the list.", field="time_zone")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise Refused("Choose a time zone from the list.", field="time_zone") from error
    return name


def normalise_phone(raw: str | None, field: str = "phone") -> str | None:
    """A phone number in E.164 (+14135550100), or None when blank; Refused if invalid."""
    raw = (raw or "").strip()
    if not raw:
        return None
    region = current_app.config.get("DEFAULT_PHONE_REGION", "US")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as error:
        raise Refused("That isn't a phone number.", field=field) from error
    if not phonenumbers.is_valid_number(number):
        raise Refused(
            "That phone number isn't valid; check the area code and the number of digits.",
            field=field,
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _clean_text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


# How dates are typed: month first (US) or day first.
DATE_ORDERS = ("mdy", "dmy")
# Where "Prescribe" leads: the portal's own screens or the vendor's embedded one.
PRESCRIBING_PATHS = ("portal", "vendor")

# The units vital signs may be typed and shown in (UCUM codes), per quantity.
VITALS_UNITS = {
    "temperature_unit": ("[degF]", "Cel"),
    "weight_unit": ("[lb_av]", "kg"),
    "length_unit": ("[in_i]", "cm"),
}


def save_clinic(
    *,
    actor,
    name: str,
    address: str | None,
    phone: str | None,
    time_zone: str,
    temperature_unit: str | None = None,
    weight_unit: str | None = None,
    length_unit: str | None = None,
    date_order: str | None = None,
    prescribing_path: str | None = None,
):
    """Create or update the clinic's details; the audit detail names the changed fields only.

    The vital-signs units are UCUM codes from VITALS_UNITS and the date order one of
    DATE_ORDERS; one not given stays as it is.
    """
    name = (name or "").strip()
    if not name:
        raise Refused("Enter the clinic's name.", field="name")
    values = {
        "name": name,
        "address": _clean_text(address),
        "phone": normalise_phone(phone),
        "time_zone": valid_time_zone(time_zone),
    }
    units = {
        "temperature_unit": temperature_unit,
        "weight_unit": weight_unit,
        "length_unit": length_unit,
    }
    for key, unit in units.items():
        if unit is None:
            continue
        if unit not in VITALS_UNITS[key]:
            raise Refused("Choose a unit from the list.", field=key)
        values[key] = unit
    if date_order is not None:
        if date_order not in DATE_ORDERS:
            raise Refused("Choose how dates are typed from the list.", field="date_order")
        values["date_order"] = date_order
    if prescribing_path is not None:
        if prescribing_path not in PRESCRIBING_PATHS:
            raise Refused("Choose a prescribing screen from the list.", field="prescribing_path")
        values["prescribing_path"] = prescribing_path
    with use_case():
        _forget_cached_clinic()
        clinic = current_clinic()
        action = "clinic.update"
        if clinic is None:
            clinic = Clinic(**values)
            db.session.add(clinic)
            action = "clinic.create"
            changed = sorted(values)
        else:
            changed = sorted(key for key, value in values.items() if getattr(clinic, key) != value)
            for key, value in values.items():
                setattr(clinic, key, value)
        audit.record(
            actor,
            action,
            obj=clinic,
            category=CATEGORY,
            detail=f"changed: {', '.join(changed) or 'nothing'}",
        )
    _forget_cached_clinic()
    return clinic


def list_locations() -> list[Location]:
    """The clinic's locations, active ones first, then by name."""
    clinic = current_clinic()
    if clinic is None:
        return []
    return list(
        db.session.scalars(
            select(Location)
            .where(Location.clinic_id == clinic.id)
            .order_by(Location.is_active.desc(), Location.name)
        )
    )


def get_location_or_404(location_id: int) -> Location:
    """One of the clinic's locations, or NotFound."""
    clinic = current_clinic()
    location = db.session.get(Location, location_id)
    if location is None or clinic is None or location.clinic_id != clinic.id:
        raise NotFound()
    return location


def _check_name_free(clinic: Clinic, name: str, except_id: int | None = None) -> None:
    query = select(Location.id).where(
        Location.clinic_id == clinic.id, func.lower(Location.name) == name.lower()
    )
    if except_id is not None:
        query = query.where(Location.id != except_id)
    if db.session.scalar(query.limit(1)) is not None:
        raise Refused("Another location already has that name.", field="name")


def create_location(*, actor, name: str, address: str | None, phone: str | None) -> Location:
    """A new, active location of the clinic (names are unique, whatever the case)."""
    name = (name or "").strip()
    if not name:
        raise Refused("Enter the location's name.", field="name")
    values = {"address": _clean_text(address), "phone": normalise_phone(phone)}
    with use_case():
        _forget_cached_clinic()
        clinic = current_clinic()
        if clinic is None:
            raise Refused("Save the clinic's details first.")
        _check_name_free(clinic, name)
        location = Location(clinic_id=clinic.id, name=name, is_active=True, **values)
        db.session.add(location)
        audit.record(actor, "location.create", obj=location, category=CATEGORY)
    _forget_cached_clinic()
    return location


def update_location(
    *, actor, location: Location, name: str, address: str | None, phone: str | None
) -> None:
    """Change a location's name, address and phone; the audit names the changed fields."""
    name = (name or "").strip()
    if not name:
        raise Refused("Enter the location's name.", field="name")
    values = {"name": name, "address": _clean_text(address), "phone": normalise_phone(phone)}
    with use_case():
        _check_name_free(location.clinic, name, except_id=location.id)
        changed = sorted(key for key, value in values.items() if getattr(location, key) != value)
        for key, value in values.items():
            setattr(location, key, value)
        audit.record(
            actor,
            "location.update",
            obj=location,
            category=CATEGORY,
            detail=f"changed: {', '.join(changed) or 'nothing'}",
        )
    _forget_cached_clinic()


def set_location_active(*, actor, location: Location, active: bool) -> None:
    """Deactivate (never delete: appointments will point at it) or reactivate a location."""
    with use_case():
        if not active and location.is_active:
            others = db.session.scalar(
                select(func.count())
                .select_from(Location)
                .where(
                    Location.clinic_id == location.clinic_id,
                    Location.is_active.is_(True),
                    Location.id != location.id,
                )
            )
            if not others:
                raise Refused("The clinic needs at least one active location.")
        location.is_active = active
        audit.record(
            actor,
            "location.activate" if active else "location.deactivate",
            obj=location,
            category=CATEGORY,
        )
    _forget_cached_clinic()

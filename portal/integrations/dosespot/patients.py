"""DoseSpot's patient: the payload built from the portal's plain "patient snapshot", and the
checks DoseSpot would make, made here first.

Checking on our side lets the chart say what to fix, in a clinician's words, before anything
leaves the portal; DoseSpot's own refusals name its fields ("PrimaryPhone must be 10 digits")
and arrive only after a round trip, or as a failed outbox message.

The snapshot (all values plain; missing keys read as blank)::

    {"mrn": "10000017", "given_name": "Rosa", "family_name": "Delgado", "middle_name": None,
     "birth_date": "1971-03-09" (or a date), "sex_at_birth": "female" | "male" | "unknown",
     "address_line1": "5 Oak Lane", "address_line2": None, "city": "Springfield",
     "state": "MA", "postal_code": "01101",
     "phone_mobile": "+14135550199", "phone_home": None, "phone_work": None,
     "email": None, "height_cm": 170.0, "weight_kg": 65.2, "active": True}
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

ADULT_AGE = 19  # DoseSpot requires height and weight below this age
GENDERS = {"female": "Female", "male": "Male"}  # anything else is DoseSpot's "Unknown"
# The snapshot's phones in the order one becomes the primary, with DoseSpot's phone type.
PHONES = (("phone_mobile", "Cell"), ("phone_home", "Home"), ("phone_work", "Work"))
HEIGHT_CENTIMETERS = 2  # DoseSpot's HeightMetric: 1 inches, 2 centimeters
WEIGHT_KILOGRAMS = 2  # DoseSpot's WeightMetric: 1 pounds, 2 kilograms
US_STATES = frozenset(
    {
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "DC",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
        "AS",
        "GU",
        "MP",
        "PR",
        "VI",
    }
)
ZIP_CODE = re.compile(r"^\d{5}(\d{4})?$")


def _text(snapshot: dict, key: str) -> str:
    value = snapshot.get(key)
    return str(value).strip() if value is not None else ""


def birth_date(snapshot: dict) -> date | None:
    value = snapshot.get("birth_date")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10]) if value else None
    except ValueError:
        return None


def age_in_years(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def ten_digit_phone(raw: Any) -> str | None:
    """A US number as DoseSpot wants it: 10 digits, no +1, no punctuation; None otherwise."""
    digits = re.sub(r"\D", "", str(raw or ""))
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) == 10 else None


def _phones(snapshot: dict) -> list[tuple[str, str]]:
    """(10 digits, DoseSpot phone type) of every usable phone, primary first."""
    found = []
    for key, kind in PHONES:
        number = ten_digit_phone(snapshot.get(key))
        if number:
            found.append((number, kind))
    return found


def _positive(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number > 0 else None


def _zip(snapshot: dict) -> str:
    return re.sub(r"[\s-]", "", _text(snapshot, "postal_code"))


def patient_problems(snapshot: dict, today: date) -> list[str]:
    """What stops DoseSpot from taking this patient, as things a clinician can do; empty when
    nothing does. Words only, never the patient's values (these may be logged)."""
    problems = []
    if not (_text(snapshot, "given_name") and _text(snapshot, "family_name")):
        problems.append("Add the patient's first and last name")
    born = birth_date(snapshot)
    if born is None:
        problems.append("Record the date of birth")
    elif born > today:
        problems.append("Correct the date of birth: it is in the future")
    if not all(_text(snapshot, k) for k in ("address_line1", "city", "state", "postal_code")):
        problems.append(
            "Add a home address to prescribe electronically (street, city, state and ZIP code)"
        )
    else:
        if _text(snapshot, "state").upper() not in US_STATES:
            problems.append("Use the two-letter code of a US state in the address (e.g. MA)")
        if not ZIP_CODE.match(_zip(snapshot)):
            problems.append("Correct the ZIP code: 5 digits, or 9 for ZIP+4")
    if not _phones(snapshot):
        problems.append("Add a 10-digit phone number")
    minor = born is not None and born <= today and age_in_years(born, today) < ADULT_AGE
    measured = _positive(snapshot.get("height_cm")) and _positive(snapshot.get("weight_kg"))
    if minor and not measured:
        problems.append("Record height and weight (required under 19 years)")
    return problems


def gender(sex_at_birth: Any) -> str:
    return GENDERS.get(str(sex_at_birth or "").strip().lower(), "Unknown")


def patient_payload(snapshot: dict) -> dict:
    """The body of ``POST /api/patients`` (or ``PUT``) for a snapshot that has no problems."""
    born = birth_date(snapshot)
    phones = _phones(snapshot)
    payload: dict[str, Any] = {
        "FirstName": _text(snapshot, "given_name"),
        "LastName": _text(snapshot, "family_name"),
        "DateOfBirth": born.isoformat() if born else None,
        "Gender": gender(snapshot.get("sex_at_birth")),
        "Address1": _text(snapshot, "address_line1"),
        "City": _text(snapshot, "city"),
        "State": _text(snapshot, "state").upper(),
        "ZipCode": _zip(snapshot),
        "PrimaryPhone": phones[0][0] if phones else None,
        "PrimaryPhoneType": phones[0][1] if phones else None,
        "Active": bool(snapshot.get("active", True)),
        "NonDoseSpotMedicalRecordNumber": _text(snapshot, "mrn") or None,
    }
    optional = {
        "MiddleName": _text(snapshot, "middle_name"),
        "Address2": _text(snapshot, "address_line2"),
        "Email": _text(snapshot, "email"),
    }
    payload.update({key: value for key, value in optional.items() if value})
    if len(phones) > 1:
        payload["PhoneAdditional1"], payload["PhoneAdditionalType1"] = phones[1]
    height, weight = _positive(snapshot.get("height_cm")), _positive(snapshot.get("weight_kg"))
    if height:
        payload.update(Height=float(height), HeightMetric=HEIGHT_CENTIMETERS)
    if weight:
        payload.update(Weight=float(weight), WeightMetric=WEIGHT_KILOGRAMS)
    return payload

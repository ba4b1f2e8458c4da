"""Patients and prescriptions: the checks DoseSpot makes on what a client sends, and the
shapes it answers with. Shared by the REST API and the SSO prescribing screen, so both
refuse the same things with the same words.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from portal.integrations.sandbox.dosespot.state import PRESCRIPTION_STATUS, SandboxState

GENDERS = ("Male", "Female", "Unknown")
PHONE_TYPES = ("Beeper", "Cell", "Fax", "Home", "Work", "Night", "Primary")
PATIENT_REQUIRED = (
    "FirstName",
    "LastName",
    "DateOfBirth",
    "Gender",
    "Address1",
    "City",
    "State",
    "ZipCode",
    "PrimaryPhone",
    "PrimaryPhoneType",
    "Active",
)
PATIENT_FIELDS = (
    *PATIENT_REQUIRED,
    "Prefix",
    "MiddleName",
    "Suffix",
    "Email",
    "Address2",
    "PhoneAdditional1",
    "PhoneAdditionalType1",
    "Height",
    "HeightMetric",
    "Weight",
    "WeightMetric",
    "NonDoseSpotMedicalRecordNumber",
)
PRESCRIPTION_REQUIRED = (
    "DispensableDrugId",
    "DispenseUnitId",
    "Quantity",
    "Refills",
    "Directions",
    "Status",
)
# Statuses a client may create a prescription in (a pending one, not yet sent).
CREATABLE_STATUSES = (
    PRESCRIPTION_STATUS["Entered"],
    PRESCRIPTION_STATUS["Edited"],
    PRESCRIPTION_STATUS["ReadyToSign"],
)
ZIP = re.compile(r"^\d{5}(-?\d{4})?$")
STATE = re.compile(r"^[A-Z]{2}$")


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_date(value: Any) -> date | None:
    """DoseSpot's dates: ISO (``1980-04-02`` or with a time) or ``M/d/yyyy``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for parse in (
        lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")).date(),
        lambda t: datetime.strptime(t, "%m/%d/%Y").date(),
    ):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def _age_in_years(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def patient_errors(data: dict, today: date | None = None) -> list[str]:
    """Every reason DoseSpot would refuse this patient, in words a person can act on."""
    today = today or datetime.now(UTC).date()
    errors = []
    missing = [name for name in PATIENT_REQUIRED if data.get(name) in (None, "")]
    if missing:
        errors.append("Required fields missing: " + ", ".join(missing) + ".")
    born = parse_date(data.get("DateOfBirth"))
    if data.get("DateOfBirth") and born is None:
        errors.append("DateOfBirth is not a date.")
    elif born and born > today:
        errors.append("DateOfBirth is in the future.")
    if data.get("Gender") and data["Gender"] not in GENDERS:
        errors.append("Gender must be one of Male, Female, Unknown.")
    for name in ("PrimaryPhone", "PhoneAdditional1"):
        phone = data.get(name)
        if phone and not (isinstance(phone, str) and re.fullmatch(r"\d{10}", phone)):
            errors.append(f"{name} must be 10 digits with no country code or punctuation.")
    if data.get("PrimaryPhoneType") and data["PrimaryPhoneType"] not in PHONE_TYPES:
        errors.append("PrimaryPhoneType must be one of " + ", ".join(PHONE_TYPES) + ".")
    if data.get("State") and not STATE.match(str(data["State"])):
        errors.append("State must be a two-letter code.")
    if data.get("ZipCode") and not ZIP.match(str(data["ZipCode"])):
        errors.append("ZipCode must be 5 or 9 digits.")
    if "Active" in data and not isinstance(data.get("Active"), bool):
        errors.append("Active must be true or false.")
    if born and _age_in_years(born, today) < 19:
        for measure in ("Height", "Weight"):
            if not _positive_number(data.get(measure)):
                errors.append(f"{measure} is required for a patient under 19 years.")
    return errors


def _positive_number(value: Any) -> bool:
    try:
        return Decimal(str(value)) > 0
    except (InvalidOperation, ValueError):
        return False


def patient_record(data: dict, clinic_id: int, patient_id: int) -> dict:
    record = {name: data.get(name) for name in PATIENT_FIELDS}
    record.update(PatientId=patient_id, ClinicId=clinic_id)
    return record


def patient_json(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "ClinicId"}


def prescription_errors(state: SandboxState, data: dict) -> list[str]:
    errors = []
    missing = [name for name in PRESCRIPTION_REQUIRED if data.get(name) in (None, "")]
    if missing:
        errors.append("Required fields missing: " + ", ".join(missing) + ".")
    store = state.store
    drug_id = int_or_none(data.get("DispensableDrugId"))
    if data.get("DispensableDrugId") not in (None, "") and drug_id not in store.drugs:
        errors.append("DispensableDrugId is not a known drug.")
    unit_id = int_or_none(data.get("DispenseUnitId"))
    if data.get("DispenseUnitId") not in (None, "") and unit_id not in store.units:
        errors.append("DispenseUnitId is not a known dispense unit.")
    if data.get("Quantity") not in (None, "") and not _positive_number(data.get("Quantity")):
        errors.append("Quantity must be a number greater than 0.")
    refills = int_or_none(data.get("Refills"))
    if data.get("Refills") not in (None, "") and (refills is None or not 0 <= refills <= 99):
        errors.append("Refills must be a whole number from 0 to 99.")
    days = data.get("DaysSupply")
    if days not in (None, "") and (int_or_none(days) is None or not 1 <= int_or_none(days) <= 999):
        errors.append("DaysSupply must be a whole number from 1 to 999.")
    directions = data.get("Directions") or ""
    if len(directions) > 1000:
        errors.append("Directions must be at most 1,000 characters.")
    if len(data.get("PharmacyNotes") or "") > 210:
        errors.append("PharmacyNotes must be at most 210 characters.")
    pharmacy = data.get("PharmacyId")
    if pharmacy not in (None, "") and int_or_none(pharmacy) not in store.pharmacies:
        errors.append("PharmacyId is not a known pharmacy.")
    status = data.get("Status")
    if status not in (None, "") and int_or_none(status) not in CREATABLE_STATUSES:
        errors.append("Status must be Entered (1), Edited (9) or ReadyToSign (12) on create.")
    if len(data.get("Diagnoses") or []) > 2:
        errors.append("At most two diagnoses.")
    return errors


def int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def prescription_record(
    state: SandboxState, data: dict, patient_id: int, prescriber_id: int, rx_id: int
) -> dict:
    drug = state.store.drugs[int(data["DispensableDrugId"])]
    written = now_iso()
    return {
        "PrescriptionId": rx_id,
        "PatientId": patient_id,
        "Status": int(data["Status"]),
        "MedicationStatus": 1,
        "DisplayName": drug["DisplayName"],
        "DispensableDrugId": drug["DispensableDrugId"],
        "RxCUI": drug["RxCUI"],
        "NDC": drug["NDC"],
        "Schedule": drug["Schedule"],
        "Quantity": str(Decimal(str(data["Quantity"]))),
        "DispenseUnitId": int(data["DispenseUnitId"]),
        "Refills": str(int(data["Refills"])),
        "DaysSupply": int_or_none(data.get("DaysSupply")),
        "Directions": data["Directions"],
        "PharmacyId": int_or_none(data.get("PharmacyId")),
        "PrescriberId": prescriber_id,
        "WrittenDate": written,
        "EffectiveDate": data.get("EffectiveDate") or written[:10],
        "LastFillDate": None,
        "DateInactive": None,
        "NoSubstitutions": bool(data.get("NoSubstitutions")),
        "PharmacyNotes": data.get("PharmacyNotes") or "",
        "NonDoseSpotPrescriptionId": data.get("NonDoseSpotPrescriptionId"),
        "Diagnoses": list(data.get("Diagnoses") or []),
        "ErrorDetails": None,
    }


def prescription_json(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in ("PatientId", "Schedule")}

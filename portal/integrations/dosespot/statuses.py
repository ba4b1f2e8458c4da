"""DoseSpot's status enumerations (DOSESPOT.md section 3) and how they read in FHIR (section 6).

DoseSpot speaks numbers; the portal speaks names. Each table is written once, here, and the
reverse look-ups are derived from it so the two directions cannot drift apart.
"""

from __future__ import annotations

from typing import Any

# Where the prescription is in its transmission to the pharmacy.
PRESCRIPTION_STATUS: dict[str, int] = {
    "Entered": 1,
    "Printed": 2,
    "Sending": 3,
    "eRxSent": 4,
    "FaxSent": 5,
    "Error": 6,
    "Deleted": 7,
    "Requested": 8,
    "Edited": 9,
    "EpcsError": 10,
    "EpcsSigned": 11,
    "ReadyToSign": 12,
    "PharmacyVerified": 13,
}

# What the pharmacy side says about the medication (fills, cancels). There is no 2.
MEDICATION_STATUS: dict[str, int] = {
    "Active": 1,
    "Discontinued": 3,
    "Deleted": 4,
    "Completed": 5,
    "CancelRequested": 6,
    "CancelPending": 7,
    "Cancelled": 8,
    "CancelDenied": 9,
    "Changed": 10,
    "FullFill": 11,
    "PartialFill": 12,
    "NoFill": 13,
}

PRESCRIPTION_STATUS_NAME: dict[int, str] = {n: name for name, n in PRESCRIPTION_STATUS.items()}
MEDICATION_STATUS_NAME: dict[int, str] = {n: name for name, n in MEDICATION_STATUS.items()}

# A prescription in one of these has not left for the pharmacy yet: it may still be sent.
SENDABLE = frozenset({"Entered", "Edited", "ReadyToSign", "EpcsSigned"})

# FHIR MedicationRequest.status for each DoseSpot state name, and whether the prescriber must
# be told (a failed transmission stays a draft, but someone has to act on it). Section 6 names
# most states; the rest are our reading, marked "ours": a fax or a cancel still waiting means
# the order is still in force, a change replaced it.
FHIR_STATUS: dict[str, tuple[str, bool]] = {
    "Entered": ("draft", False),
    "Edited": ("draft", False),
    "ReadyToSign": ("draft", False),
    "Requested": ("draft", False),
    "EpcsSigned": ("draft", False),
    "Sending": ("active", False),
    "eRxSent": ("active", False),
    "PharmacyVerified": ("active", False),
    "Printed": ("active", False),
    "FaxSent": ("active", False),  # ours
    "Active": ("active", False),
    "PartialFill": ("active", False),
    "NoFill": ("active", False),  # ours: not dispensed yet, still prescribed
    "CancelRequested": ("active", False),  # ours: in force until the pharmacy confirms
    "CancelPending": ("active", False),  # ours
    "CancelDenied": ("active", True),  # ours: the prescriber asked for a cancel and lost
    "FullFill": ("completed", False),
    "Completed": ("completed", False),
    "Cancelled": ("cancelled", False),
    "Discontinued": ("stopped", False),
    "Changed": ("stopped", False),  # ours: a pharmacy change replaced it
    "Deleted": ("entered-in-error", False),
    "Error": ("draft", True),
    "EpcsError": ("draft", True),
}

# Once a prescription has gone out, the pharmacy's word (MedicationStatus) tells more than the
# transmission's; before that, or when the transmission failed, the transmission's does.
_TRANSMITTED = frozenset({"Sending", "eRxSent", "FaxSent", "PharmacyVerified", "Printed"})


def number_of(table: dict[str, int], value: Any) -> int | None:
    """A status given as a number, a string of digits or a name (any case) -> its number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value in table.values() else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return number_of(table, int(text))
        for name, number in table.items():
            if name.lower() == text.lower():
                return number
    return None


def prescription_status_name(value: Any) -> str | None:
    number = number_of(PRESCRIPTION_STATUS, value)
    return PRESCRIPTION_STATUS_NAME.get(number) if number is not None else None


def medication_status_name(value: Any) -> str | None:
    number = number_of(MEDICATION_STATUS, value)
    return MEDICATION_STATUS_NAME.get(number) if number is not None else None


def fhir_status(prescription_status: str | None, medication_status: str | None) -> tuple[str, bool]:
    """(FHIR MedicationRequest.status, prescriber must be alerted) for a DoseSpot prescription
    given by its two status names. Unknown states read as "unknown" with an alert, so that a
    status DoseSpot adds later is noticed rather than shown as fine."""
    if prescription_status in _TRANSMITTED and medication_status in FHIR_STATUS:
        return FHIR_STATUS[medication_status]
    if prescription_status in FHIR_STATUS:
        return FHIR_STATUS[prescription_status]
    return ("unknown", True)


# A prescription composed in the portal before the vendor holds it has no DoseSpot status:
# its FHIR status comes from the portal's own state, read the way section 6 reads DoseSpot's
# matching states (a draft is a draft; signed and waiting in the outbox, it is an order in
# force, like "Sending"). Once the vendor answers, ``fhir_status`` above decides.
PORTAL_STATE_FHIR_STATUS: dict[str, str] = {
    "draft": "draft",
    "signed": "active",
    "queued": "active",
}

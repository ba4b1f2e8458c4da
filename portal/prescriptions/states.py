"""One state machine for every prescription, whatever the path it was written by.

A prescription composed in the portal moves draft -> signed -> queued (in the outbox) -> sent
-> pharmacy verified; from there the pharmacy's notices move it to filled, partially filled or
not filled, and a cancel to cancel requested -> cancelled or cancel denied. A failed
transmission is ``error`` (the prescriber decides: retry, another pharmacy, or print), and a
printed prescription is ``printed`` for good: it is never transmitted afterwards.

A prescription written in the vendor's embedded screen arrives with the vendor's two statuses;
``state_from_vendor`` reads them into the same states, so the chart shows one badge language.
"""

from __future__ import annotations

DRAFT = "draft"
SIGNED = "signed"
QUEUED = "queued"
SENT = "sent"
PHARMACY_VERIFIED = "pharmacy_verified"
ERROR = "error"
PRINTED = "printed"
CANCEL_REQUESTED = "cancel_requested"
CANCELLED = "cancelled"
CANCEL_DENIED = "cancel_denied"
FILLED = "filled"
PARTIALLY_FILLED = "partially_filled"
NOT_FILLED = "not_filled"
# Only from the vendor's side: a medication the vendor ended, completed or replaced, and a
# prescription deleted there (entered in error).
DISCONTINUED = "discontinued"
COMPLETED = "completed"
CHANGED = "changed"
DELETED = "deleted"

# state -> (the badge's words, the badge's tone: neutral, progress, good, warning, danger)
STATES: dict[str, tuple[str, str]] = {
    DRAFT: ("Draft", "neutral"),
    SIGNED: ("Signed", "progress"),
    QUEUED: ("Queued", "progress"),
    SENT: ("Sent", "progress"),
    PHARMACY_VERIFIED: ("Pharmacy verified", "good"),
    ERROR: ("Transmission error", "danger"),
    PRINTED: ("Printed", "neutral"),
    CANCEL_REQUESTED: ("Cancel requested", "warning"),
    CANCELLED: ("Cancelled", "neutral"),
    CANCEL_DENIED: ("Cancel denied", "danger"),
    FILLED: ("Filled", "good"),
    PARTIALLY_FILLED: ("Partially filled", "good"),
    NOT_FILLED: ("Not filled", "warning"),
    DISCONTINUED: ("Discontinued", "neutral"),
    COMPLETED: ("Completed", "neutral"),
    CHANGED: ("Changed by the pharmacy", "warning"),
    DELETED: ("Deleted", "neutral"),
}

# States in which the prescription is still in force or on its way: it counts as active for
# the safety checks (duplicates, interactions) and may be cancelled.
OPEN_STATES = frozenset(
    {SIGNED, QUEUED, SENT, PHARMACY_VERIFIED, ERROR, CANCEL_DENIED, FILLED, PARTIALLY_FILLED}
    | {NOT_FILLED, PRINTED, CANCEL_REQUESTED}
)

# The vendor's transmission status (PrescriptionStatus) -> state.
_FROM_TRANSMISSION: dict[str, str] = {
    "Entered": DRAFT,
    "Edited": DRAFT,
    "ReadyToSign": DRAFT,
    "Requested": DRAFT,
    "EpcsSigned": SIGNED,
    "Sending": SENT,
    "eRxSent": SENT,
    "FaxSent": SENT,
    "PharmacyVerified": PHARMACY_VERIFIED,
    "Printed": PRINTED,
    "Error": ERROR,
    "EpcsError": ERROR,
    "Deleted": DELETED,
}

# The pharmacy side (MedicationStatus) -> state, once the prescription has gone out. "Active"
# says nothing more than the transmission did.
_FROM_PHARMACY: dict[str, str] = {
    "CancelRequested": CANCEL_REQUESTED,
    "CancelPending": CANCEL_REQUESTED,
    "Cancelled": CANCELLED,
    "CancelDenied": CANCEL_DENIED,
    "FullFill": FILLED,
    "PartialFill": PARTIALLY_FILLED,
    "NoFill": NOT_FILLED,
    "Discontinued": DISCONTINUED,
    "Completed": COMPLETED,
    "Changed": CHANGED,
    "Deleted": DELETED,
}

_GONE_OUT = frozenset({SENT, PHARMACY_VERIFIED, PRINTED})


def state_from_vendor(prescription_status: str | None, medication_status: str | None) -> str:
    """The state a prescription is in by the vendor's two statuses (an unknown transmission
    status reads as ``sent``: it was written at the vendor, so it has left the portal)."""
    state = _FROM_TRANSMISSION.get(prescription_status or "", SENT)
    if state in _GONE_OUT and medication_status in _FROM_PHARMACY:
        return _FROM_PHARMACY[medication_status]
    return state


def label(state: str) -> str:
    return STATES.get(state, (state.replace("_", " ").capitalize(), "neutral"))[0]


def tone(state: str) -> str:
    return STATES.get(state, ("", "neutral"))[1]

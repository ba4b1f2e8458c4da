"""One state machine for every lab order, and the badge each state shows everywhere.

An order is a ``draft`` while its prescriber composes it (kept server-side, seen by nobody
else); signing makes it ``signed`` and, when a lab connector performs it, puts its send in the
outbox in the same transaction. The worker hands it to the lab (``sent``: on the wire, waiting
for the lab's ACK, and so while retries wait after a lab that did not answer); the lab's AA
makes it ``acknowledged``, its AE or AR (or no answer after every retry) ``error``, with the
lab's words. Results move it to ``partially_resulted`` and ``resulted`` (labs/services.py), and
the prescriber's review of every result to ``reviewed``. An order may be ``cancelled`` until a
result has arrived. An order signed without a lab stays ``signed``: its requisition is printed.

``overdue`` is not a state: it is read from the clock, when an order the lab has (or that was
printed) has no result after the slowest of its tests' expected turnaround.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from portal.terminology import lab_tests

DRAFT = "draft"
SIGNED = "signed"
SENT = "sent"
ACKNOWLEDGED = "acknowledged"
PARTIALLY_RESULTED = "partially_resulted"
RESULTED = "resulted"
REVIEWED = "reviewed"
CANCELLED = "cancelled"
ERROR = "error"

# state -> (the badge's words, its tone: neutral, progress, good, warning, danger)
STATES: dict[str, tuple[str, str]] = {
    DRAFT: ("Draft", "neutral"),
    SIGNED: ("Signed", "progress"),
    SENT: ("Sent to the lab", "progress"),
    ACKNOWLEDGED: ("Acknowledged by the lab", "progress"),
    PARTIALLY_RESULTED: ("Partially resulted", "warning"),
    RESULTED: ("Resulted", "good"),
    REVIEWED: ("Reviewed", "good"),
    CANCELLED: ("Cancelled", "neutral"),
    ERROR: ("Refused by the lab", "danger"),
}

# Which state may follow which (the order's own use cases and the outbox's outcome; results
# and review move an order on through labs/services.py, from any state the lab holds).
TRANSITIONS: dict[str, frozenset[str]] = {
    DRAFT: frozenset({SIGNED, CANCELLED}),
    SIGNED: frozenset({SENT, ACKNOWLEDGED, ERROR, CANCELLED, PARTIALLY_RESULTED, RESULTED}),
    SENT: frozenset({ACKNOWLEDGED, ERROR, CANCELLED, PARTIALLY_RESULTED, RESULTED}),
    ACKNOWLEDGED: frozenset({PARTIALLY_RESULTED, RESULTED, CANCELLED}),
    PARTIALLY_RESULTED: frozenset({RESULTED, REVIEWED}),
    RESULTED: frozenset({REVIEWED, PARTIALLY_RESULTED}),
    REVIEWED: frozenset({PARTIALLY_RESULTED, RESULTED}),
    CANCELLED: frozenset(),
    ERROR: frozenset({SENT, ACKNOWLEDGED, CANCELLED}),
}

# No result yet, and nothing received that would make a cancel come too late.
CANCELLABLE = frozenset({DRAFT, SIGNED, SENT, ACKNOWLEDGED, ERROR})
# The lab has it, or it went on paper: a result is expected.
AWAITING_RESULTS = frozenset({SIGNED, SENT, ACKNOWLEDGED, PARTIALLY_RESULTED})
# The send may still be delivered (a withdrawn order's send is withheld: labs/ordering).
SENDABLE = frozenset({SIGNED, SENT, ERROR})


def may_move(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def label(state: str) -> str:
    return STATES.get(state, (state.replace("_", " ").capitalize(), "neutral"))[0]


def tone(state: str) -> str:
    return STATES.get(state, ("", "neutral"))[1]


def expected_within(loincs) -> timedelta:
    """The slowest expected turnaround of the tests ``loincs`` (a day for one the catalog no
    longer knows)."""
    days = [test.turnaround_days if (test := lab_tests.get(code)) else 1 for code in loincs] or [1]
    return timedelta(days=max(days))


def is_overdue(status: str, signed_at: datetime | None, loincs, now: datetime) -> bool:
    """Whether an order awaiting results has waited longer than its tests take."""
    if status not in AWAITING_RESULTS or signed_at is None:
        return False
    return now - signed_at > expected_within(loincs)

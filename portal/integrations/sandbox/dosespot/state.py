"""The sandbox's memory: fixtures loaded once, everything else in dicts behind one lock.

One re-entrant lock guards the whole store. The sandbox serves a handful of test clients,
so one lock is simpler than per-table locks and cannot deadlock; the lifecycle and
webhook threads take it for the moment they change a record, never while they wait.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).with_name("fixtures")

# DoseSpot's enumerations (DOSESPOT.md section 3). JSON carries the numbers, as DoseSpot's
# API does; the names are for people and for the control API, which accepts either.
PRESCRIPTION_STATUS = {
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
MEDICATION_STATUS = {
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
PRESCRIPTION_STATUS_NAME = {number: name for name, number in PRESCRIPTION_STATUS.items()}
MEDICATION_STATUS_NAME = {number: name for name, number in MEDICATION_STATUS.items()}

REGISTRATION_STATUSES = (
    "Pending",
    "RegistrationSuccess",
    "IDPSuccess",
    "TFAActivatedSuccess",
    "LockedOut",
)


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def enum_value(table: dict[str, int], value: Any) -> int | None:
    """A status given as its number or its name (any case) -> its number; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in table.values() else None
    if isinstance(value, str):
        if value.isdigit():
            return enum_value(table, int(value))
        for name, number in table.items():
            if name.lower() == value.lower():
                return number
    return None


@dataclass
class Faults:
    """[sandbox] The switches the control API flips to make the sandbox misbehave."""

    token_lifetime: float | None = None  # seconds; None: the configured lifetime
    rate_limit: int = 0  # API calls allowed per rate window; 0: no limit
    result_error: bool = False  # every API call answers ResultCode ERROR
    down: bool = False  # 503 on everything but the control API
    latency: float = 0.0  # seconds every API answer (the token's too) waits: a slow vendor
    webhook_drop: bool = False  # record webhooks but never send them
    webhook_duplicate: bool = False  # send every webhook twice (same event id)
    webhook_delay: float = 0.0  # seconds to hold each webhook before its first try
    webhook_reorder: bool = False  # hold each webhook until the next one has gone

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Store:
    clinics: dict[int, dict] = field(default_factory=dict)
    clinicians: dict[int, dict] = field(default_factory=dict)
    pharmacies: dict[int, dict] = field(default_factory=dict)
    drugs: dict[int, dict] = field(default_factory=dict)
    units: dict[int, dict] = field(default_factory=dict)
    patients: dict[int, dict] = field(default_factory=dict)
    prescriptions: dict[int, dict] = field(default_factory=dict)
    transmission_errors: list[dict] = field(default_factory=list)
    refill_requests: dict[int, dict] = field(default_factory=dict)
    rx_change_requests: dict[int, dict] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    used_phrases: set[str] = field(default_factory=set)
    tokens: dict[str, dict] = field(default_factory=dict)
    api_calls: list[float] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    next_id: int = 10_000


class SandboxState:
    """The store plus the lock, and the handful of operations every part needs."""

    def __init__(self, clinic_overrides: dict | None = None):
        self.lock = threading.RLock()
        self._clinic_overrides = clinic_overrides or {}
        self.store = Store()
        self.reset()

    def reset(self) -> None:
        """Back to the fixtures: no patients, prescriptions, events, tokens or faults."""
        with self.lock:
            store = Store()
            clinics = load_fixture("clinics.json")["clinics"]
            first = dict(clinics[0])
            first.update({k: v for k, v in self._clinic_overrides.items() if v is not None})
            for clinic in [first, *clinics[1:]]:
                store.clinics[int(clinic["ClinicId"])] = dict(clinic)
            original_first_id = int(clinics[0]["ClinicId"])
            for clinician in load_fixture("clinicians.json")["clinicians"]:
                clinician = dict(clinician)
                if clinician["ClinicId"] == original_first_id:
                    clinician["ClinicId"] = int(first["ClinicId"])
                store.clinicians[clinician["ClinicianId"]] = clinician
            for pharmacy in load_fixture("pharmacies.json")["pharmacies"]:
                store.pharmacies[pharmacy["PharmacyId"]] = dict(pharmacy)
            for drug in load_fixture("drugs.json")["drugs"]:
                store.drugs[drug["DispensableDrugId"]] = dict(drug)
            for unit in load_fixture("dispense_units.json")["units"]:
                store.units[unit["DispenseUnitId"]] = dict(unit)
            self.store = store

    def new_id(self) -> int:
        with self.lock:
            self.store.next_id += 1
            return self.store.next_id

    @property
    def faults(self) -> Faults:
        return self.store.faults

    def clinic_by_id(self, clinic_id: Any) -> dict | None:
        try:
            return self.store.clinics.get(int(clinic_id))
        except (TypeError, ValueError):
            return None

    def clinician_by_id(self, clinician_id: Any) -> dict | None:
        try:
            return self.store.clinicians.get(int(clinician_id))
        except (TypeError, ValueError):
            return None

    def count_api_call(self, window: float) -> int:
        """Record one API call; answer how many fell in the last ``window`` seconds."""
        now = time.monotonic()
        with self.lock:
            calls = [t for t in self.store.api_calls if now - t < window]
            calls.append(now)
            self.store.api_calls = calls
            return len(calls)

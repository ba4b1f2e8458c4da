"""What a connector is: a class with a name, a kind, a configuration schema, ``check()``,
and the operations of its kind.

A connector instance is made from one clinic's settings (secrets already decrypted) each
time it is used; it holds no state of the portal and imports no domain model. It receives
plain data (the outbox's payloads) and returns plain data.

Errors say what a person can act on. ``SettingRefused`` names the field an admin must fix
(shown beside it when enabling). ``TransientError`` is worth retrying (the vendor is down,
slow, rate-limited); ``PermanentError`` is not (the vendor refused the message as it is):
the outbox retries the first with back-off and marks the second failed at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

FIELD_TYPES = ("text", "lines", "secret", "url", "integer", "boolean")  # lines: a multi-line text


@dataclass(frozen=True)
class Field:
    """One setting of a connector, as the console's form shows it."""

    name: str
    label: str
    type: str = "text"
    required: bool = True
    default: Any = None
    help: str = ""

    def __post_init__(self):
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type!r}")

    @property
    def secret(self) -> bool:
        return self.type == "secret"


class IntegrationError(Exception):
    """Something went wrong talking to a vendor; ``str()`` is safe to show and to log
    (connectors never put patient data or secrets in it)."""


class TransientError(IntegrationError):
    """Worth trying again later: the vendor is down, slow, or asks us to wait.

    ``retry_after`` (seconds), when the vendor said how long to wait."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(IntegrationError):
    """The vendor refused this message as it is: retrying the same would fail the same."""


class BadWebhook(IntegrationError):
    """A pushed message we refuse: ``reason`` is short and fixed ("bad secret", "stale",
    "malformed JSON"); ``stored`` says whether it is kept (verified but malformed) or only
    counted (not verified: nothing of a forger's is stored)."""

    def __init__(self, reason: str, *, stored: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.stored = stored


class SettingRefused(IntegrationError):
    """``check()`` found a setting wrong; ``field`` names it (None: not one field's fault)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class Connector(ABC):
    """The base of every connector. Subclasses set the class attributes and implement
    ``check()`` and ``deliver()`` (and the operations of their kind)."""

    name: ClassVar[str]  # stable, used in URLs and the database: "dosespot"
    kind: ClassVar[str]  # "eprescribing", "lab"
    title: ClassVar[str]  # what an admin reads: "DoseSpot e-prescribing"
    description: ClassVar[str] = ""
    fields: ClassVar[tuple[Field, ...]] = ()

    def __init__(self, settings: dict[str, Any]):
        self.settings = settings

    @classmethod
    def field(cls, name: str) -> Field:
        for field in cls.fields:
            if field.name == name:
                return field
        raise KeyError(name)

    @abstractmethod
    def check(self) -> None:
        """Try the settings against the vendor; raise ``SettingRefused`` saying what is
        wrong (or ``TransientError`` when the vendor cannot be reached)."""

    @abstractmethod
    def deliver(self, operation: str, payload: dict[str, Any], idempotency_key: str) -> dict:
        """Carry out one outbox message; return what the vendor answered (plain data, kept
        with the message). Called by the worker, outside any transaction, possibly more than
        once for one message: ``idempotency_key`` is stable across tries, so the vendor side
        (or a read before a retried create) can tell a repeat."""

    def verify_webhook(self, headers, raw_body: bytes, now) -> str:
        """Check a pushed message is the vendor's (secret, signature, time window) and
        return its event id; raise ``BadWebhook``. A connector that takes no webhooks
        refuses them all."""
        raise BadWebhook("this connector takes no webhooks")

    def parse_webhook(self, raw_body: str) -> tuple[str, dict]:
        """(event type, data) of a verified message; ``BadWebhook(stored=True)`` when it
        cannot be read."""
        raise BadWebhook("this connector takes no webhooks", stored=True)


class EPrescribingConnector(Connector):
    """Sends prescriptions to pharmacies through a vendor, and offers the vendor's own
    prescribing screen embedded in the chart.

    The portal hands it a patient "snapshot" (plain data: mrn, given_name, family_name,
    birth_date ISO, sex_at_birth, address_line1/2, city, state, postal_code, phone_mobile /
    phone_home / phone_work, email, height_cm, weight_kg) and the vendor's ids of the
    clinician and patient; it returns vendor ids and plain dicts.
    """

    kind = "eprescribing"

    #: Given the vendor's clinician id, that prescriber's EPCS PIN and current one-time
    #: password at the vendor, for sending a controlled substance. Handed in by the portal
    #: when it makes the connector (``settings``; ``integrations/epcs_credentials.py``),
    #: never carried in a payload; None: controlled substances cannot be sent.
    epcs_factors: Callable[[Any], tuple[str, str]] | None = None

    @abstractmethod
    def patient_problems(self, snapshot: dict) -> list[str]:
        """What must be fixed in the chart before the vendor will take this patient, in
        words for the clinician ("Add a home address to prescribe electronically"); empty
        when nothing. Checked here so the vendor's raw error is never what a user sees."""

    @abstractmethod
    def sync_patient(self, clinician_id: str, snapshot: dict, patient_id: str | None) -> str:
        """Create (``patient_id`` None) or update the vendor's copy; return its id."""

    @abstractmethod
    def launch_url(self, clinician_id: str, patient_id: str | None) -> str:
        """A fresh single sign-on URL of the vendor's screen for this clinician: the
        patient's page, or (``patient_id`` None) the clinician's queues. Made anew for every
        launch; never stored or logged."""

    @abstractmethod
    def screen_origin(self) -> str:
        """The origin the embedded screen is served from (the page's CSP ``frame-src``)."""

    @abstractmethod
    def notification_counts(self, clinician_id: str) -> dict[str, int]:
        """Items waiting in the clinician's queues, by queue (refill requests, errors...)."""

    @abstractmethod
    def chart_prescriptions(self, patient_id: str, since: date) -> list[dict]:
        """The patient's prescriptions at the vendor written since ``since``, each a dict:
        vendor_id, drug, rxcui, ndc, quantity, refills, days_supply, directions, status (the
        vendor's name for it), medication_status, fhir_status (MedicationRequest.status),
        written_on (a date), prescriber_vendor_id, pharmacy_id (the vendor's, as text)."""

    def pending_requests(self, kind: str, clinician_id: str) -> list[dict]:
        """The clinician's pending pharmacy requests of ``kind`` ("renewal" or "change"),
        each a dict: request_id, kind, change_type (generic_substitution,
        therapeutic_substitution, prior_authorization, clarification, other; None for a
        renewal), clinician_id, patient_id, prescription_id (the vendor's ids, as text), ours
        (our id the vendor carries), pharmacy_id, drug, details, requested_at. Answered
        through the outbox: ``approve_<kind>`` / ``deny_<kind>``. A connector whose vendor
        has no such requests has none."""
        return []

    @abstractmethod
    def event_patient_id(self, data: dict) -> str | None:
        """The vendor's patient id a pushed event is about (None: not about a patient)."""


class LabConnector(Connector):
    """Sends lab orders to a performing lab and receives its results."""

    kind = "lab"


KINDS = {"eprescribing": "E-prescribing", "lab": "Laboratory"}

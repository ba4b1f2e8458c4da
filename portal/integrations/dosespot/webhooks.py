"""Checking DoseSpot's push notifications (DOSESPOT.md section 4) before anything acts on them.

Pure functions: the inbox endpoint hands over the headers, the raw body, the clinic's secret
and the time, and gets an event id back or ``BadWebhook`` saying why not.

DoseSpot authenticates a notification only by the clinic's shared secret in the
``Authorization`` header. When the sender also signs (the sandbox's ``X-Sandbox-Signature``:
HMAC-SHA256 over ``timestamp + "." + raw body``, with ``X-Sandbox-Timestamp``), the signature
and a five-minute window are checked too, which a replayed capture cannot pass.

DoseSpot publishes no event id. Without one, the id is a SHA-256 of the raw body: a resend of
the very same bytes is recognised, but two notifications that differ in any byte (a new
``StatusDateTime``, a re-serialised body) count as two. That is harmless because every event
is only a hint to re-read the prescription through the API, and re-reading twice changes
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from portal.integrations.base import BadWebhook
from portal.integrations.dosespot.statuses import (
    MEDICATION_STATUS,
    PRESCRIPTION_STATUS,
    number_of,
)

TIMESTAMP_WINDOW_SECONDS = 300
SIGNATURE_VERSION = "v1="
EVENT_ID_MAX_CHARS = 100
# Data fields that carry ids; given as numbers or strings, they come out as ints.
ID_FIELDS = ("PatientId", "ClinicId", "ClinicianId", "PrescriptionId", "PharmacyId")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name in any case (a plain dict of headers is as good as werkzeug's)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_webhook(headers: Mapping[str, str], raw_body: bytes, secret: str, now: float) -> str:
    """The event's id if the notification is genuine (``now``: Unix seconds); else
    ``BadWebhook``."""
    if not secret:
        raise BadWebhook("no webhook secret configured")
    given = (_header(headers, "Authorization") or "").strip()
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise BadWebhook("wrong or missing shared secret")
    signature = _header(headers, "X-Sandbox-Signature")
    timestamp = _header(headers, "X-Sandbox-Timestamp")
    if signature is not None or timestamp is not None:
        _check_signature(signature or "", timestamp or "", raw_body, secret, now)
    event_id = (_header(headers, "X-Sandbox-Event-Id") or "").strip()
    if event_id:
        if len(event_id) > EVENT_ID_MAX_CHARS or not event_id.isprintable():
            raise BadWebhook("malformed event id")
        return event_id
    return "sha256:" + hashlib.sha256(raw_body).hexdigest()


def _check_signature(signature: str, timestamp: str, raw_body: bytes, secret: str, now: float):
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise BadWebhook("malformed timestamp") from None
    if abs(now - sent_at) > TIMESTAMP_WINDOW_SECONDS:
        raise BadWebhook("timestamp outside the five-minute window")
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(signature.strip().encode(), (SIGNATURE_VERSION + expected).encode()):
        raise BadWebhook("bad signature")


def parse_event(raw_body: bytes) -> tuple[str, dict[str, Any]]:
    """(EventType, Data) read leniently: statuses come as numbers, strings of digits or names,
    under ``Status``, ``PrescriptionStatus``, ``MedicationStatus`` or ``PharmacyStatus``; in
    the returned data ``PrescriptionStatus`` and ``MedicationStatus`` are numbers (when
    known) and the ids are ints. Anything else is kept as sent."""
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting exhausts the stack
        raise BadWebhook("malformed JSON", stored=True) from None
    if not isinstance(body, dict):
        raise BadWebhook("malformed JSON", stored=True)
    event_type = body.get("EventType")
    if not isinstance(event_type, str) or not event_type.strip():
        raise BadWebhook("no EventType", stored=True)
    data = body.get("Data")
    data = dict(data) if isinstance(data, dict) else {}
    for name in ID_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value.strip().isdigit():
            data[name] = int(value)
    status = data.get("Status")
    prescription = number_of(PRESCRIPTION_STATUS, data.get("PrescriptionStatus"))
    medication = number_of(
        MEDICATION_STATUS,
        data["MedicationStatus"] if "MedicationStatus" in data else data.get("PharmacyStatus"),
    )
    # A bare "Status" means the transmission's in a PrescriptionResult and the pharmacy's in
    # a MedicationStatusUpdate, as the two events' samples use it.
    if status is not None:
        if event_type == "MedicationStatusUpdate" and medication is None:
            medication = number_of(MEDICATION_STATUS, status)
        elif event_type != "MedicationStatusUpdate" and prescription is None:
            prescription = number_of(PRESCRIPTION_STATUS, status)
    if prescription is not None:
        data["PrescriptionStatus"] = prescription
    if medication is not None:
        data["MedicationStatus"] = medication
    return event_type.strip(), data

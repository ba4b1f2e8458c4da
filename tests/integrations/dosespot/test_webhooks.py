"""Checking and reading DoseSpot's notifications: pure functions, no server."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from portal.integrations.dosespot.webhooks import BadWebhook, parse_event, verify_webhook
from tests.integrations.dosespot.helpers import WEBHOOK_SECRET

NOW = 1_750_000_000
BODY = json.dumps(
    {"EventType": "PrescriptionResult", "Data": {"PrescriptionId": 10002, "PrescriptionStatus": 4}}
).encode()


def _signed(body=BODY, secret=WEBHOOK_SECRET, timestamp=NOW, event_id="evt-1"):
    stamp = str(timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {
        "Authorization": secret,
        "X-Sandbox-Timestamp": stamp,
        "X-Sandbox-Signature": "v1=" + digest,
    }
    if event_id:
        headers["X-Sandbox-Event-Id"] = event_id
    return headers


def test_a_signed_notification_gives_its_event_id():
    assert verify_webhook(_signed(), BODY, WEBHOOK_SECRET, NOW + 30) == "evt-1"


def test_without_an_event_id_the_body_names_the_event():
    headers = {"authorization": WEBHOOK_SECRET}  # DoseSpot's own: the secret only
    first = verify_webhook(headers, BODY, WEBHOOK_SECRET, NOW)
    assert first == "sha256:" + hashlib.sha256(BODY).hexdigest()
    assert verify_webhook(headers, BODY, WEBHOOK_SECRET, NOW) == first
    assert verify_webhook(headers, BODY + b" ", WEBHOOK_SECRET, NOW) != first


def test_a_forged_secret_is_refused():
    with pytest.raises(BadWebhook, match="shared secret"):
        verify_webhook(_signed(secret="x" * 33), BODY, WEBHOOK_SECRET, NOW)
    with pytest.raises(BadWebhook, match="shared secret"):
        verify_webhook({}, BODY, WEBHOOK_SECRET, NOW)


def test_a_bad_signature_is_refused():
    headers = _signed() | {"X-Sandbox-Signature": "v1=" + "0" * 64}
    with pytest.raises(BadWebhook, match="bad signature"):
        verify_webhook(headers, BODY, WEBHOOK_SECRET, NOW)
    with pytest.raises(BadWebhook, match="bad signature"):  # a body changed on the way
        verify_webhook(_signed(), BODY.replace(b"4", b"6"), WEBHOOK_SECRET, NOW)


def test_a_stale_or_future_timestamp_is_refused():
    with pytest.raises(BadWebhook, match="window"):
        verify_webhook(_signed(timestamp=NOW - 301), BODY, WEBHOOK_SECRET, NOW)
    with pytest.raises(BadWebhook, match="window"):
        verify_webhook(_signed(timestamp=NOW + 301), BODY, WEBHOOK_SECRET, NOW)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
def test_malformed_json_is_refused(body):
    with pytest.raises(BadWebhook, match="malformed JSON"):
        parse_event(body)


def test_no_event_type_is_refused():
    with pytest.raises(BadWebhook, match="no EventType"):
        parse_event(b'{"Data": {}}')


def test_statuses_are_read_leniently():
    event, data = parse_event(
        b'{"EventType": "MedicationStatusUpdate", '
        b'"Data": {"PrescriptionId": "10002", "PharmacyStatus": "FullFill"}}'
    )
    assert event == "MedicationStatusUpdate"
    assert data["PrescriptionId"] == 10002 and data["MedicationStatus"] == 11
    _, data = parse_event(b'{"EventType": "PrescriptionResult", "Data": {"Status": "13"}}')
    assert data["PrescriptionStatus"] == 13


def test_a_one_megabyte_body_is_verified_and_then_read():
    # Verification is a hash over the bytes, whatever their size; the inbox caps what it
    # accepts before this. A large but well-formed body parses (its notes are kept as sent).
    body = json.dumps(
        {"EventType": "PrescriptionResult", "Data": {"StatusDetails": "x" * 1_048_576}}
    ).encode()
    assert verify_webhook(_signed(body=body), body, WEBHOOK_SECRET, NOW) == "evt-1"
    event, data = parse_event(body)
    assert event == "PrescriptionResult" and len(data["StatusDetails"]) == 1_048_576
    for junk in (b"{" * 1_048_576, b"[" * 1_048_576):  # the second nests a million deep
        with pytest.raises(BadWebhook, match="malformed JSON"):
            parse_event(junk)

"""The single sign-on URL: DoseSpot's recipe recomputed here by hand, and the sandbox's verdict."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import requests

from tests.integrations.dosespot.helpers import (
    CLINIC_ID,
    CLINIC_KEY,
    PRESCRIBER,
    connector,
    snapshot,
)


def _by_hand(text: str) -> str:
    encoded = base64.b64encode(hashlib.sha512(text.encode("utf-8")).digest()).decode()
    assert encoded.endswith("==")
    return encoded[:-2]


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_the_codes_follow_dosespots_recipe(sandbox):
    ds = connector(sandbox)
    url = ds.launch_url(str(PRESCRIBER), "12345")
    query = _query(url)
    assert urlsplit(url).path == "/LoginSingleSignOn.aspx"
    phrase = query["SingleSignOnCode"][:32]
    assert len(phrase) == 32 and phrase.isalnum() and phrase.isascii()
    assert query["SingleSignOnCode"] == phrase + _by_hand(phrase + CLINIC_KEY)
    assert query["SingleSignOnUserIdVerify"] == _by_hand(f"{PRESCRIBER}{phrase[:22]}{CLINIC_KEY}")
    assert query["SingleSignOnClinicId"] == str(CLINIC_ID)
    assert query["SingleSignOnUserId"] == str(PRESCRIBER)
    assert query["SingleSignOnPhraseLength"] == "32"
    assert query["PatientId"] == "12345" and "RefillsErrors" not in query
    assert "+" not in urlsplit(url).query and "/" not in urlsplit(url).query  # URL-encoded


def test_every_launch_has_a_fresh_phrase(sandbox):
    ds = connector(sandbox)
    codes = {_query(ds.launch_url(str(PRESCRIBER), None))["SingleSignOnCode"] for _ in range(5)}
    assert len(codes) == 5


def test_the_sandbox_opens_the_screen_once_per_url(sandbox):
    ds = connector(sandbox)
    patient_id = ds.sync_patient(PRESCRIBER, snapshot())
    url = ds.launch_url(str(PRESCRIBER), str(patient_id))
    first = requests.get(url, timeout=30)
    assert first.status_code == 200 and "Prescribe" in first.text
    again = requests.get(url, timeout=30)
    assert again.status_code == 403 and "2028" in again.text


def test_without_a_patient_the_url_opens_the_queues(sandbox):
    url = connector(sandbox).launch_url(str(PRESCRIBER), None)
    assert _query(url)["RefillsErrors"] == "1" and "PatientId" not in _query(url)
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200 and "Notifications" in answer.text


def test_a_wrong_clinic_key_is_refused_by_the_sandbox(sandbox):
    url = connector(sandbox, clinic_key="SANDBOXKEY-wrong").launch_url(str(PRESCRIBER), None)
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 403 and "2028" in answer.text

"""The connector against the DoseSpot sandbox over HTTP: settings check, tokens, faults, paging."""

from __future__ import annotations

import socket
import time

import pytest

from portal.integrations import registry
from portal.integrations.base import PermanentError, SettingRefused, TransientError
from portal.integrations.dosespot.client import DoseSpotRefused, safe_description
from tests.integrations.dosespot.helpers import (
    PRESCRIBER,
    connector,
    prescription,
    snapshot,
)


def test_dosespot_is_a_built_in_connector():
    import portal.integrations.builtin  # noqa: F401

    found = registry.connector_class("dosespot")
    assert found is not None and found.kind == "eprescribing"
    secrets = {field.name for field in found.fields if field.secret}
    assert secrets == {"clinic_key", "subscription_key", "webhook_secret"}


def test_check_accepts_the_right_settings(sandbox):
    connector(sandbox).check()


def test_check_names_the_clinic_key_when_it_is_wrong(sandbox):
    with pytest.raises(SettingRefused) as refused:
        connector(sandbox, clinic_key="SANDBOXKEY-wrong").check()
    assert refused.value.field == "clinic_key"
    assert "SANDBOXKEY" not in str(refused.value)


def test_check_refuses_a_wrong_subscription_key(sandbox):
    # The sandbox answers a wrong subscription key as it answers a wrong clinic key (400
    # invalid_client), so the refusal can only name the clinic key and say all three.
    with pytest.raises(SettingRefused) as refused:
        connector(sandbox, subscription_key="not-the-key").check()
    assert refused.value.field == "clinic_key"
    assert "subscription key" in str(refused.value)


def test_check_names_the_admin_clinician_of_another_clinic(sandbox):
    with pytest.raises(SettingRefused) as refused:
        connector(sandbox, admin_clinician_id=2101).check()
    assert refused.value.field == "admin_clinician_id"


def test_check_names_the_api_address_when_nothing_answers(sandbox):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SettingRefused) as refused:
        connector(sandbox, api_base_url=f"http://127.0.0.1:{port}").check()
    assert refused.value.field == "api_base_url"


def test_check_refuses_a_short_webhook_secret(sandbox):
    with pytest.raises(SettingRefused) as refused:
        connector(sandbox, webhook_secret="short").check()
    assert refused.value.field == "webhook_secret"


def test_a_token_is_granted_once_and_reused(sandbox):
    ds = connector(sandbox)
    ds.notification_counts(PRESCRIBER)
    ds.search_drugs("lisinopril")
    connector(sandbox).clinician_registration_status(PRESCRIBER)  # a new connector object
    # One token for the prescriber, one for the admin clinician the drug search acts as.
    assert sandbox.tokens_granted() == 2


def test_an_expired_token_is_replaced_without_the_caller_noticing(sandbox):
    sandbox.faults(token_lifetime=1)
    ds = connector(sandbox)
    assert ds.notification_counts(PRESCRIBER)["refill_requests"] == 0
    time.sleep(1.2)
    assert ds.notification_counts(PRESCRIBER)["refill_requests"] == 0
    assert sandbox.tokens_granted() == 2


def test_a_token_dosespot_forgot_is_replaced_once_and_the_call_retried(sandbox):
    ds = connector(sandbox)
    ds.notification_counts(PRESCRIBER)
    with sandbox.box.state.lock:  # DoseSpot drops the token before its time
        sandbox.box.state.store.tokens.clear()
    assert ds.notification_counts(PRESCRIBER)["pending_prescriptions"] == 0
    assert sandbox.tokens_granted() == 1  # the new one


def test_rate_limited_calls_are_transient_with_the_wait_dosespot_asks(sandbox):
    ds = connector(sandbox)
    sandbox.faults(rate_limit=1)
    ds.notification_counts(PRESCRIBER)
    with pytest.raises(TransientError) as slowed:
        ds.notification_counts(PRESCRIBER)
    assert slowed.value.retry_after == 10


def test_a_result_error_is_permanent(sandbox):
    sandbox.faults(result_error=True)
    with pytest.raises(DoseSpotRefused) as refused:
        connector(sandbox).notification_counts(PRESCRIBER)
    assert isinstance(refused.value, PermanentError)
    assert "ResultCode ERROR fault is on" in str(refused.value)


def test_dosespot_down_is_transient(sandbox):
    sandbox.faults(down=True)
    with pytest.raises(TransientError):
        connector(sandbox).search_drugs("lisinopril")
    with pytest.raises(TransientError):  # check() too: worth trying again, not a bad setting
        connector(sandbox).check()


def test_paged_lists_are_read_to_the_end(sandbox):
    ds = connector(sandbox)
    patient_id = ds.sync_patient(PRESCRIBER, snapshot())
    for number in range(5):  # the sandbox pages by 2: three pages
        ds.client.post(
            f"api/patients/{patient_id}/prescriptions/coded",
            PRESCRIBER,
            {
                "DispensableDrugId": 5001,
                "DispenseUnitId": 26,
                "Quantity": "30",
                "Refills": 0,
                "Directions": "Take one tablet daily.",
                "Status": 1,
                "NonDoseSpotPrescriptionId": f"rx-{number}",
            },
        )
    found = ds.patient_prescriptions(PRESCRIBER, patient_id)
    assert [rx["non_dosespot_prescription_id"] for rx in found] == [f"rx-{n}" for n in range(5)]
    assert {rx["status"] for rx in found} == {"Entered"}
    assert {rx["fhir_status"] for rx in found} == {"draft"}


def test_searches_answer_plain_data(sandbox):
    ds = connector(sandbox)
    drugs = ds.search_drugs("lisinopril")
    assert drugs and all("lisinopril" in d["display_name"].lower() for d in drugs)
    chosen = ds.select_drug(dispensable_drug_id=drugs[0]["dispensable_drug_id"])
    assert chosen["rxcui"] == drugs[0]["rxcui"]
    pharmacies = ds.search_pharmacies(city="Springfield")
    assert {p["pharmacy_id"] for p in pharmacies} >= {3001, 3002}
    main_street = next(p for p in pharmacies if p["pharmacy_id"] == 3001)
    assert "EPCS" in main_street["services"] and "NewRx" in main_street["services"]
    assert ds.clinician_registration_status(PRESCRIBER) == "TFAActivatedSuccess"
    assert prescription()  # the helper's shape stays usable


def test_descriptions_lose_what_could_be_patient_data():
    shown = safe_description("Patient 'Rosa Delgado' born 03/09/1971, phone 4135550199, a@b.org")
    assert "Rosa" not in shown and "1971" not in shown and "4135550199" not in shown
    assert "a@b.org" not in shown


def test_a_slow_dosespot_is_a_transient_failure_within_the_time_out(sandbox):
    """A vendor slower than the client's read time-out: the call gives up (the worker is
    never held) and says so as worth retrying; within the time-out it simply succeeds."""
    ds = connector(sandbox)
    ds.client.timeout = (2.0, 0.3)
    ds.notification_counts(PRESCRIBER)  # token fetched while the vendor is quick
    sandbox.faults(latency=0.1)
    assert set(ds.notification_counts(PRESCRIBER)) >= {"refill_requests"}
    sandbox.faults(latency=0.6)
    started = time.monotonic()
    with pytest.raises(TransientError, match="did not answer"):
        ds.notification_counts(PRESCRIBER)
    assert time.monotonic() - started < 1.5

"""The DoseSpot sandbox over real HTTP: a live server on a free loopback port, talked to
with requests, as the connector will. Webhooks land in a small receiver served the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
import threading
import time
from urllib.parse import urlencode

import pyotp
import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from portal.integrations.sandbox.dosespot.app import create_sandbox_app

CLINIC_ID = 1001
CLINIC_KEY = "SANDBOXKEY-7f3a9c2e41d84b6e9a0c5d1f2e3b4a59"
SUBSCRIPTION = "sandbox-subscription-key-1001"
PRESCRIBER = 2001  # EPCS-enabled
EPCS_SEED_2001 = "BQGB7C6NVWPKCVE53OGKIJIHRAINCYW4"  # its registered OTP token (fixtures)
OTHER_CLINIC_PRESCRIBER = 2101
SECRET = "test-webhook-secret-abcdefghijklmnop"
FAST_DELAY = 0.05


def serve(wsgi_app):
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_port}"


class Receiver:
    """A webhook endpoint that records what arrives; it can answer 500 a number of times."""

    def __init__(self):
        self.received: list[dict] = []
        self.fail_next = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        with self.lock:
            failing = self.fail_next > 0
            self.fail_next -= 1 if failing else 0
            self.received.append(
                {
                    "headers": dict(request.headers),
                    "body": body,
                    "answered": 500 if failing else 200,
                }
            )
        return Response("no" if failing else "ok", status=500 if failing else 200)(
            environ, start_response
        )

    def bodies(self, answered=None):
        with self.lock:
            return [
                json.loads(r["body"])
                for r in self.received
                if answered is None or r["answered"] == answered
            ]


@pytest.fixture
def receiver():
    hook = Receiver()
    server, thread, url = serve(hook)
    hook.url = url + "/hooks/dosespot"
    yield hook
    server.shutdown()
    thread.join(timeout=30)


@pytest.fixture
def sandbox(receiver):
    app = create_sandbox_app(
        {
            "webhook_url": receiver.url,
            "webhook_secret": SECRET,
            "webhook_backoff": (0.05, 0.05, 0.05, 0.05),
            "webhook_timeout": 2.0,
            "lifecycle_delay": FAST_DELAY,
            "page_size": 2,
            "portal_origin": "http://portal.test:5000",
        }
    )
    server, thread, url = serve(app)
    yield url
    server.shutdown()
    thread.join(timeout=30)
    app.extensions["dosespot_sandbox"].stop()


def eventually(check, timeout=30.0):
    """Poll until check() returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("condition not met before the deadline")
        time.sleep(0.02)


def token(base, clinician=PRESCRIBER, key=CLINIC_KEY, subscription=SUBSCRIPTION, header=None):
    return requests.post(
        f"{base}/webapi/v2/connect/token",
        data={
            "grant_type": "password",
            "client_id": str(CLINIC_ID),
            "client_secret": key,
            "username": str(clinician),
            "password": key,
            "scope": "api",
        },
        headers={header or "Subscription-Key": subscription},
        timeout=30,
    )


class Api:
    def __init__(self, base, clinician=PRESCRIBER):
        self.base = base
        answer = token(base, clinician)
        assert answer.status_code == 200, answer.text
        self.headers = {"Authorization": "Bearer " + answer.json()["access_token"]}

    def get(self, path, **params):
        return requests.get(
            f"{self.base}/webapi/v2/api/{path}", params=params, headers=self.headers, timeout=30
        )

    def post(self, path, body=None, **params):
        return requests.post(
            f"{self.base}/webapi/v2/api/{path}",
            json=body or {},
            params=params,
            headers=self.headers,
            timeout=30,
        )


def adult(**changes):
    patient = {
        "FirstName": "Rosa",
        "LastName": "Delgado",
        "DateOfBirth": "1971-03-09",
        "Gender": "Female",
        "Address1": "5 Oak Lane",
        "City": "Springfield",
        "State": "MA",
        "ZipCode": "01101",
        "PrimaryPhone": "4135550199",
        "PrimaryPhoneType": "Cell",
        "Active": True,
        "NonDoseSpotMedicalRecordNumber": "MRN-0001",
    }
    patient.update(changes)
    return patient


def pending(drug=5001, pharmacy=3001, **changes):
    body = {
        "DispensableDrugId": drug,
        "DispenseUnitId": 26,
        "Quantity": "30",
        "Refills": 2,
        "DaysSupply": 30,
        "Directions": "Take one tablet by mouth daily.",
        "Status": 1,
        "PharmacyId": pharmacy,
        "NonDoseSpotPrescriptionId": "portal-rx-1",
    }
    body.update(changes)
    return body


def control(base, path, body=None):
    answer = requests.post(f"{base}/_sandbox/{path}", json=body or {}, timeout=30)
    assert answer.status_code < 300, answer.text
    return answer.json()


def new_patient(api, **changes):
    answer = api.post("patients", adult(**changes)).json()
    assert answer["Result"]["ResultCode"] == "OK", answer
    return answer["Id"]


# Token -------------------------------------------------------------------------------------


def test_token_is_issued_for_a_clinician_of_the_clinic(sandbox):
    answer = token(sandbox)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer" and body["userName"] == str(PRESCRIBER)
    assert body["expires_in"] == 600 and body[".issued"] and body[".expires"]
    # The other header name is accepted too.
    assert token(sandbox, header="Ocp-Apim-Subscription-Key").status_code == 200


def test_token_refuses_wrong_keys_and_strangers(sandbox):
    wrong_key = token(sandbox, key="not-the-key")
    assert wrong_key.status_code == 400 and wrong_key.json()["error"] == "invalid_client"
    wrong_subscription = token(sandbox, subscription="nope")
    assert wrong_subscription.json()["error"] == "invalid_client"
    stranger = token(sandbox, clinician=OTHER_CLINIC_PRESCRIBER)
    assert stranger.status_code == 400 and stranger.json()["error"] == "invalid_grant"


def test_api_calls_need_a_live_bearer_token(sandbox):
    assert requests.get(f"{sandbox}/webapi/v2/api/general/check", timeout=30).status_code == 401
    control(sandbox, "faults", {"token_lifetime": 0.2})
    api = Api(sandbox)
    assert api.get("general/check").json()["Result"]["ResultCode"] == "OK"
    eventually(lambda: api.get("general/check").status_code == 401)


# Patients and the envelope ----------------------------------------------------------------------


def test_bad_patient_data_is_http_200_with_result_error_saying_why(sandbox):
    api = Api(sandbox)
    answer = api.post("patients", adult(PrimaryPhone="+1 413 555 0199", Gender="F"))
    assert answer.status_code == 200
    result = answer.json()["Result"]
    assert result["ResultCode"] == "ERROR"
    assert "PrimaryPhone must be 10 digits" in result["ResultDescription"]
    assert "Gender must be one of" in result["ResultDescription"]
    child = api.post("patients", adult(DateOfBirth="2015-06-01")).json()["Result"]
    assert "Height is required" in child["ResultDescription"]
    assert "Weight is required" in child["ResultDescription"]
    ok = api.post("patients", adult(DateOfBirth="2015-06-01", Height=120, Weight=25)).json()
    assert ok["Result"]["ResultCode"] == "OK"
    # [sandbox] strict mode makes the same refusal a 4xx.
    assert api.post("patients", adult(ZipCode="x"), strict=1).status_code == 400


def test_patient_update_and_search(sandbox):
    api = Api(sandbox)
    patient_id = new_patient(api)
    updated = requests.put(
        f"{sandbox}/webapi/v2/api/patients/{patient_id}",
        json=adult(LastName="Delgado-Ruiz"),
        headers=api.headers,
        timeout=30,
    ).json()
    assert updated == {"Id": patient_id, "Result": {"ResultCode": "OK", "ResultDescription": ""}}
    found = api.get("patients/search", lastName="delgado", dob="3/9/1971").json()
    assert [p["PatientId"] for p in found["Items"]] == [patient_id]
    assert found["Items"][0]["LastName"] == "Delgado-Ruiz"


def test_prescriptions_of_a_patient_are_paged(sandbox):
    api = Api(sandbox)
    patient_id = new_patient(api)
    ids = [
        api.post(f"patients/{patient_id}/prescriptions/coded", pending()).json()["Id"]
        for _ in range(3)
    ]
    first = api.get(f"patients/{patient_id}/prescriptions").json()
    assert first["PageResult"] == {
        "CurrentPage": 1,
        "TotalPages": 2,
        "PageSize": 2,
        "TotalCount": 3,
        "HasPrevious": False,
        "HasNext": True,
    }
    second = api.get(f"patients/{patient_id}/prescriptions", pageNumber=2).json()
    assert [rx["PrescriptionId"] for rx in first["Items"] + second["Items"]] == ids
    # No idempotency, as at DoseSpot: the same NonDoseSpotPrescriptionId made three.
    assert {rx["NonDoseSpotPrescriptionId"] for rx in first["Items"]} == {"portal-rx-1"}
    assert first["Items"][0]["Status"] == 1 and first["Items"][0]["RxCUI"] == "314076"


def test_a_prescription_missing_fields_is_refused(sandbox):
    api = Api(sandbox)
    patient_id = new_patient(api)
    answer = api.post(
        f"patients/{patient_id}/prescriptions/coded", pending(Directions="", DispensableDrugId=1)
    ).json()["Result"]
    assert answer["ResultCode"] == "ERROR"
    assert "Directions" in answer["ResultDescription"]
    assert "DispensableDrugId is not a known drug" in answer["ResultDescription"]


# SSO -------------------------------------------------------------------------------------------


def sso_url(base, patient_id=None, user=PRESCRIBER, key=CLINIC_KEY, phrase=None, **extra):
    """The launch URL, computed here from the recipe, independently of the sandbox:
    code = phrase + b64(SHA-512(phrase + key)) minus a trailing "=="; verify =
    b64(SHA-512(user id + phrase[:22] + key)) minus a trailing "=="."""
    phrase = phrase or "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(32)
    )

    def hashed(text):
        digest = base64.b64encode(hashlib.sha512(text.encode("utf-8")).digest()).decode()
        return digest[:-2] if digest.endswith("==") else digest

    params = {
        "SingleSignOnClinicId": CLINIC_ID,
        "SingleSignOnUserId": user,
        "SingleSignOnPhraseLength": 32,
        "SingleSignOnCode": phrase + hashed(phrase + key),
        "SingleSignOnUserIdVerify": hashed(f"{user}{phrase[:22]}{key}"),
    }
    if patient_id is not None:
        params["PatientId"] = patient_id
    params.update(extra)
    return f"{base}/LoginSingleSignOn.aspx?{urlencode(params)}"


def test_sso_opens_the_prescribing_screen_once_per_phrase(sandbox):
    patient_id = new_patient(Api(sandbox))
    url = sso_url(sandbox, patient_id)
    browser = requests.Session()
    page = browser.get(url, timeout=30)
    assert page.status_code == 200
    assert "Prescribe for Rosa Delgado" in page.text
    assert '<label for="drug">Drug</label>' in page.text
    assert page.headers["Content-Security-Policy"] == "frame-ancestors http://portal.test:5000"
    again = requests.get(url, timeout=30)
    assert again.status_code == 403 and 'id="result-code">2028<' in again.text


def test_sso_refuses_a_wrong_code_and_strangers(sandbox):
    patient_id = new_patient(Api(sandbox))
    wrong = requests.get(sso_url(sandbox, patient_id, key="wrong-key"), timeout=30)
    assert wrong.status_code == 403 and 'id="result-code">2028<' in wrong.text
    stranger = requests.get(sso_url(sandbox, patient_id, user=OTHER_CLINIC_PRESCRIBER), timeout=30)
    assert 'id="result-code">2034<' in stranger.text
    unknown_patient = requests.get(sso_url(sandbox, 999_999), timeout=30)
    assert 'id="result-code">2034<' in unknown_patient.text


def test_sso_sign_and_send_runs_the_lifecycle(sandbox):
    api = Api(sandbox)
    patient_id = new_patient(api)
    browser = requests.Session()
    page = browser.get(sso_url(sandbox, patient_id), timeout=30)
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    sent = browser.post(
        f"{sandbox}/sandbox/prescribe",
        data={
            "csrf": csrf,
            "DispensableDrugId": "5006",
            "Quantity": "21",
            "DispenseUnitId": "9001",
            "Refills": "0",
            "DaysSupply": "7",
            "PharmacyId": "3001",
            "Directions": "One capsule three times a day.",
            "action": "send",
        },
        timeout=30,
    )
    assert "sent." in sent.text

    def verified():
        items = api.get(f"patients/{patient_id}/prescriptions").json()["Items"]
        return items and items[0]["Status"] == 13

    eventually(verified)


def test_sso_refills_errors_opens_the_queues(sandbox):
    page = requests.get(sso_url(sandbox, RefillsErrors=1), timeout=30)
    assert page.status_code == 200 and "Transmission errors" in page.text


# Lifecycle and webhooks --------------------------------------------------------------------


def test_send_reaches_pharmacy_verified_and_each_step_is_pushed_signed(sandbox, receiver):
    api = Api(sandbox)
    patient_id = new_patient(api)
    rx_id = api.post(f"patients/{patient_id}/prescriptions/coded", pending()).json()["Id"]
    sent = api.post(f"patients/{patient_id}/prescriptions/send", {"PrescriptionIds": [rx_id]})
    assert sent.json()["Result"]["ResultCode"] == "OK"

    def statuses():
        return [
            b["Data"]["PrescriptionStatus"]
            for b in receiver.bodies()
            if b["EventType"] == "PrescriptionResult" and b["Data"]["PrescriptionId"] == rx_id
        ]

    assert eventually(lambda: statuses() if 13 in statuses() else None) == [3, 4, 13]
    for arrival in receiver.received:
        headers, body = arrival["headers"], arrival["body"]
        assert headers["Authorization"] == SECRET
        expected = hmac.new(
            SECRET.encode(), headers["X-Sandbox-Timestamp"].encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        assert headers["X-Sandbox-Signature"] == "v1=" + expected


def test_a_failing_pharmacy_ends_in_error_listed_in_notifications(sandbox):
    api = Api(sandbox)
    patient_id = new_patient(api)
    rx_id = api.post(f"patients/{patient_id}/prescriptions/coded", pending(pharmacy=3003)).json()[
        "Id"
    ]
    api.post(f"patients/{patient_id}/prescriptions/send", {"PrescriptionIds": [rx_id]})
    errors = eventually(lambda: api.get("notifications/errors").json()["Items"])
    assert errors[0]["PrescriptionId"] == rx_id and "did not accept" in errors[0]["ErrorDetails"]
    assert api.get("notifications/counts").json()["TransactionErrorsCount"] == 1


def test_controlled_drugs_go_through_send_epcs(sandbox):
    api = Api(sandbox)
    patient_id = new_patient(api)
    rx_id = api.post(
        f"patients/{patient_id}/prescriptions/coded", pending(drug=5012, Quantity="12")
    ).json()["Id"]
    plain = api.post(f"patients/{patient_id}/prescriptions/send", {"PrescriptionIds": [rx_id]})
    assert plain.json()["Result"]["ResultCode"] == "ERROR"
    forged = api.post(
        f"patients/{patient_id}/prescriptions/sendEpcs",
        {"PrescriptionIds": [rx_id], "Pin": "2468", "OTP": "654321"},
    )
    assert forged.json()["Result"]["ResultCode"] == "ERROR"
    assert "one-time password" in forged.json()["Result"]["ResultDescription"]
    otp = pyotp.TOTP(EPCS_SEED_2001).now()
    wrong_pin = api.post(
        f"patients/{patient_id}/prescriptions/sendEpcs",
        {"PrescriptionIds": [rx_id], "Pin": "1111", "OTP": otp},
    )
    assert wrong_pin.json()["Result"]["ResultCode"] == "ERROR"
    epcs = api.post(
        f"patients/{patient_id}/prescriptions/sendEpcs",
        {"PrescriptionIds": [rx_id], "Pin": "2468", "OTP": otp},
    )
    assert epcs.json()["Result"]["ResultCode"] == "OK"


def test_cancel_then_fill_statuses(sandbox, receiver):
    api = Api(sandbox)
    patient_id = new_patient(api)
    rx_id = api.post(f"patients/{patient_id}/prescriptions/coded", pending()).json()["Id"]
    api.post(f"patients/{patient_id}/prescriptions/send", {"PrescriptionIds": [rx_id]})

    def rx():
        return api.get(f"patients/{patient_id}/prescriptions").json()["Items"][0]

    eventually(lambda: rx()["Status"] == 13)
    cancelled = api.post(f"patients/{patient_id}/prescriptions/{rx_id}/cancel", {"Comment": "x"})
    assert cancelled.json()["Result"]["ResultCode"] == "OK"
    eventually(lambda: rx()["MedicationStatus"] == 8)
    control(sandbox, f"prescriptions/{rx_id}/fill", {"Fill": "PartialFill"})
    assert rx()["MedicationStatus"] == 12 and rx()["LastFillDate"]
    pushed = eventually(
        lambda: (
            [
                b["Data"]["MedicationStatus"]
                for b in receiver.bodies()
                if b["EventType"] == "MedicationStatusUpdate"
            ]
            if len([b for b in receiver.bodies() if b["EventType"] == "MedicationStatusUpdate"])
            >= 3
            else None
        )
    )
    assert pushed == [6, 8, 12]


def test_a_retried_webhook_keeps_its_event_id(sandbox, receiver):
    receiver.fail_next = 1
    control(sandbox, "clinicians/2003/registration", {"RegistrationStatus": "IDPSuccess"})
    eventually(lambda: len(receiver.received) >= 2)
    first, second = receiver.received[:2]
    assert (first["answered"], second["answered"]) == (500, 200)
    assert first["headers"]["X-Sandbox-Event-Id"] == second["headers"]["X-Sandbox-Event-Id"]
    assert json.loads(second["body"])["EventType"] == "ClinicianIDPCompleteSuccess"
    api = Api(sandbox)
    status = api.get("clinicians/2003/registrationStatus").json()
    assert status["Item"] == "IDPSuccess"


# Control faults -----------------------------------------------------------------------------


def test_rate_limit_answers_429(sandbox):
    api = Api(sandbox)
    control(sandbox, "faults", {"rate_limit": 2})
    answers = [api.get("general/check").status_code for _ in range(3)]
    assert answers == [200, 200, 429]


def test_down_answers_503_except_the_control_api(sandbox):
    control(sandbox, "faults", {"down": True})
    assert token(sandbox).status_code == 503
    assert requests.get(f"{sandbox}/_sandbox/faults", timeout=30).json()["down"] is True
    control(sandbox, "faults", {"down": False})
    assert token(sandbox).status_code == 200


def test_result_error_fault(sandbox):
    api = Api(sandbox)
    control(sandbox, "faults", {"result_error": True})
    answer = api.get("general/check")
    assert answer.status_code == 200 and answer.json()["Result"]["ResultCode"] == "ERROR"


def test_unknown_fault_switch_is_refused(sandbox):
    answer = requests.post(f"{sandbox}/_sandbox/faults", json={"dwon": True}, timeout=30)
    assert answer.status_code == 400 and answer.json()["names"] == ["dwon"]


def test_dropped_webhooks_are_listed_and_can_be_replayed(sandbox, receiver):
    control(sandbox, "faults", {"webhook_drop": True})
    control(sandbox, "clinicians/2003/registration", {"RegistrationStatus": "RegistrationSuccess"})
    events = requests.get(f"{sandbox}/_sandbox/events", timeout=30).json()["events"]
    assert events[-1]["Delivery"] == "dropped" and not receiver.received
    control(sandbox, f"events/{events[-1]['EventId']}/replay")
    eventually(lambda: receiver.received)
    assert receiver.received[0]["headers"]["X-Sandbox-Event-Id"] == events[-1]["EventId"]


def test_reset_forgets_patients(sandbox):
    api = Api(sandbox)
    new_patient(api)
    control(sandbox, "reset")
    assert Api(sandbox).get("patients/search", lastName="Delgado").json()["Items"] == []

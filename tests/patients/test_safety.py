"""Hostile input rendered inert, and no patient data in the application log."""

from __future__ import annotations

import logging
import re

import pytest
import requests
from markupsafe import escape

from portal.patients.forms import TEXT_FIELDS
from tests.patients.helpers import VALID, patient, register, register_ok
from tests.support.database import PASSWORD

PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "<i onclick=alert(1)>",  # 20 characters: fits the postal code field
)
# Fields that cannot hold markup at all (validated formats): checked separately.
FORMATTED = {"email", "country"}


def hostile_registration() -> dict:
    data = dict(VALID)
    for index, name in enumerate(f for f in TEXT_FIELDS if f not in FORMATTED):
        payload = PAYLOADS[index % len(PAYLOADS)]
        data[name] = payload if name != "postal_code" else PAYLOADS[3]
    # The family name starts with the payload so the search below can find it by prefix.
    data["family_name"] = PAYLOADS[0]
    return data


def assert_inert(page: str) -> None:
    for payload in PAYLOADS:
        assert payload not in page
    assert "<script>alert" not in page and "<img src=x" not in page and "<svg onload" not in page
    assert "<i onclick" not in page


def test_payloads_in_every_text_field_are_escaped_on_the_patient_page(app, desk):
    data = hostile_registration()
    patient_id = register_ok(desk, **data)
    stored = patient(app, patient_id)
    assert stored.family_name == PAYLOADS[0]  # stored as typed: escaping is the page's job
    page = desk.get(f"/patients/{patient_id}").get_data(as_text=True)
    assert_inert(page)
    # Every hostile value is on the page, in its escaped form.
    for name, value in data.items():
        if name in TEXT_FIELDS and name not in FORMATTED:
            assert str(escape(value)) in page, name
    edit_form = desk.get(f"/patients/{patient_id}/edit").get_data(as_text=True)
    assert_inert(edit_form)


def test_payloads_are_escaped_in_search_results(desk):
    register_ok(desk, **hostile_registration())
    for response in (
        desk.htmx_post("/patients/search", {"q": "<script>al"}),
        desk.post_form("/patients/search", {"q": "<script>al"}),
    ):
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert re.search(r'href="/patients/\d+"', page)  # the patient was found
        assert_inert(page)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_payloads_are_escaped_when_the_form_is_refused(desk):
    data = hostile_registration()
    data["email"] = PAYLOADS[1]
    response = register(desk, **data)
    assert response.status_code == 422
    assert_inert(response.get_data(as_text=True))


def test_payload_as_search_query_is_escaped_on_the_results_page(desk):
    page = desk.post_form("/patients/search", {"q": PAYLOADS[1]}).get_data(as_text=True)
    assert_inert(page)


# ---------------------------------------------------------------------------------------
# The application log never holds patient data.

SECRET_PATIENT = {
    **VALID,
    "given_name": "Zephyrine",
    "family_name": "Quillfeather",
    "preferred_name": "Zephy",
    "birth_date": "1987-04-29",
    "phone_mobile": "(413) 555-0187",
    "email": "zq@example.org",
    "address_line1": "77 Larkspur Lane",
}


class LiveBrowser:
    """requests against the live server, with the page's CSRF token like a browser form."""

    def __init__(self, base: str):
        self.base = base
        self.session = requests.Session()
        self.csrf = ""

    def get(self, path: str) -> requests.Response:
        response = self.session.get(self.base + path, timeout=30)
        match = re.search(r'<meta name="csrf-token" content="([^"]+)"', response.text)
        if match:
            self.csrf = match.group(1)
        return response

    def post(self, path: str, data: dict, **kwargs) -> requests.Response:
        return self.session.post(
            self.base + path, data={**data, "csrf_token": self.csrf}, timeout=30, **kwargs
        )


def test_register_search_view_leave_no_patient_data_in_any_log(live_server, caplog):
    for name in (None, "portal", "werkzeug", "sqlalchemy", "sqlalchemy.engine", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    browser = LiveBrowser(live_server)
    browser.get("/auth/sign-in")
    signed = browser.post("/auth/sign-in", {"username": "frontdesk", "password": PASSWORD})
    assert signed.ok
    browser.get("/patients/new")
    created = browser.post("/patients/new", SECRET_PATIENT)
    assert created.ok and re.search(r"/patients/\d+$", created.url), created.status_code
    mrn = re.search(r'<dd class="font-monospace">(\d{9})</dd>', created.text).group(1)
    patient_path = re.search(r"/patients/\d+$", created.url).group(0)
    for query in ("quill", "Quillfeather, Zeph", "04/29/1987", "29 Apr 1987", "413-555-0187", mrn):
        found = browser.post("/patients/search", {"q": query}, headers={"HX-Request": "true"})
        assert patient_path in found.text, query
    assert browser.get(patient_path).ok
    # A refused edit (the typed values come back in the form) and a saved one.
    assert (
        browser.post(
            patient_path + "/edit", {**SECRET_PATIENT, "birth_date": "1800-01-01"}
        ).status_code
        == 422
    )
    assert browser.post(patient_path + "/edit", {**SECRET_PATIENT, "city": "Quabbin"}).ok

    logged = "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    # The capture really was at DEBUG for the database and the HTTP server.
    assert any(
        r.name.startswith("sqlalchemy.engine") and r.levelno == logging.DEBUG
        for r in caplog.records
    )
    assert any(r.name == "werkzeug" for r in caplog.records)
    forbidden = [
        "Zephyrine",
        "Zephy",
        "Quillfeather",
        "quillfeather",
        "zephyrine",
        "Larkspur",
        "zq@example.org",
        "1987-04-29",
        "04/29/1987",
        "29 Apr 1987",
        "1987, 4, 29",
        "4135550187",
        "555-0187",
        "555 0187",
        mrn,
        "Quabbin",
    ]
    leaked = [value for value in forbidden if value.lower() in logged.lower()]
    assert leaked == [], f"patient data in the log: {leaked}"


@pytest.mark.parametrize("field", ["given_name", "city"])
def test_log_stays_clean_when_a_registration_is_refused(desk, caplog, field):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    response = register(desk, **{**SECRET_PATIENT, field: "Quillfeather" * 20})
    assert response.status_code == 422
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Quillfeather" not in logged and "1987-04-29" not in logged

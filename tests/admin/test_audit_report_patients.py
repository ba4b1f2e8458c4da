"""The audit report names patients (name and MRN, not an internal id) and filters on a
patient found by name or MRN, with no patient data in any address."""

from __future__ import annotations

import re

import pytest

from tests.admin.audit_report_helpers import two_patients_opened
from tests.support.audit import audit_events


@pytest.fixture
def opened(app, signed_in):
    return two_patients_opened(app, signed_in)


def patient_cells(html: str) -> list[str]:
    """The Patient column of the report's table (4th cell of each body row), as text."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in body.split("<tr")[1:]]
    return [" ".join(re.sub(r"<[^>]+>", "", cell[3]).split()) for cell in cells if len(cell) > 3]


def test_the_report_names_patients_by_name_and_mrn(opened, signed_in):
    html = signed_in("admin").get("/admin/audit/?action=patient.view").get_data(as_text=True)
    assert patient_cells(html) == [
        f"Turing, Alan MRN {opened.alan_mrn}",
        f"Lovelace, Ada MRN {opened.ada_mrn}",
    ]
    assert f"#{opened.ada}" not in html


def test_lookup_by_name_or_mrn_offers_links_that_keep_the_other_filters(opened, signed_in, app):
    admin = signed_in("admin")
    for typed in ("Lovelace", opened.ada_mrn):
        answer = admin.htmx_post(
            "/admin/audit/patients",
            {"patient_query": typed, "user": "nurse", "action": "patient.view", "patient": ""},
        )
        assert answer.status_code == 200
        links = re.findall(r'href="([^"]+)"', answer.get_data(as_text=True))
        assert links == [
            f"/admin/audit/?patient={opened.ada}&amp;user=nurse&amp;action=patient.view"
        ], typed
        assert "Lovelace" in answer.get_data(as_text=True)
    # The lookup is the registry's search, audited as one (its text recorded nowhere).
    searches = audit_events(app, "patient.search")
    assert [event.username for event in searches] == ["admin", "admin"]
    assert all("Lovelace" not in (event.detail or "") for event in searches)


def test_lookup_without_csrf_is_refused(opened, app):
    client = app.test_client()
    assert client.post("/admin/audit/patients", data={"patient_query": "Lovelace"}).status_code in (
        302,
        400,
        401,
    )


def test_filtering_on_a_patient_shows_who_it_is_and_only_their_events(opened, signed_in):
    html = (
        signed_in("admin")
        .get(f"/admin/audit/?patient={opened.alan}&action=patient.view")
        .get_data(as_text=True)
    )
    chosen = html.split('id="audit-patient-chosen"', 1)[1].split("</p>", 1)[0]
    assert "Turing, Alan" in chosen and opened.alan_mrn in chosen
    assert patient_cells(html) == [f"Turing, Alan MRN {opened.alan_mrn}"]
    assert f'<input type="hidden" name="patient" value="{opened.alan}">' in html


def test_nurse_may_not_use_the_lookup(opened, signed_in):
    assert (
        signed_in("nurse")
        .htmx_post("/admin/audit/patients", {"patient_query": "Lovelace"})
        .status_code
        == 403
    )


def test_lookup_without_javascript_is_a_page_of_links(opened, signed_in):
    answer = signed_in("admin").post_form("/admin/audit/patients", {"patient_query": "Turing"})
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "<h1" in html and "Audit trail: choose a patient" in html
    assert f'href="/admin/audit/?patient={opened.alan}"' in html


def test_a_lookup_too_long_is_refused_beside_the_box(opened, signed_in):
    answer = signed_in("admin").htmx_post("/admin/audit/patients", {"patient_query": "x" * 101})
    assert answer.status_code == 422
    assert "Field cannot be longer than 100 characters." in answer.get_data(as_text=True)


def test_the_lookup_names_only_patients_named_exactly_and_no_birth_dates(opened, signed_in):
    """The admin has no patient access: the lookup finds a patient the admin already knows
    of (exact MRN or name), not the registry to browse by prefix, given name or misspelling."""
    admin = signed_in("admin")
    for typed in ("Ada Lovelace", "Lovelace, Ada", "lovelace", opened.ada_mrn):
        html = admin.htmx_post("/admin/audit/patients", {"patient_query": typed}).get_data(
            as_text=True
        )
        assert f"/admin/audit/?patient={opened.ada}" in html, typed
        assert "DOB" not in html and "1985" not in html
    for typed in ("Love", "Ada", "Lovelase", "Lovelace, Grace"):
        html = admin.htmx_post("/admin/audit/patients", {"patient_query": typed}).get_data(
            as_text=True
        )
        assert "/admin/audit/?patient=" not in html, typed
        assert "No patient with that MRN or exactly that name." in html

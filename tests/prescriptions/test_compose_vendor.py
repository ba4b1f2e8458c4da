"""Composing with an e-prescribing connector enabled, over real sockets against the DoseSpot
sandbox: drug search at the vendor (matched to our knowledge by RxCUI; an unmatched product
says its checking is limited), the vendor down (the catalog answers, with a note), the
product confirmed at the vendor when chosen, and the pharmacy search."""

from __future__ import annotations

import pytest

from tests.integrations.dosespot.helpers import (
    SandboxServer,
)
from tests.prescriptions.compose_helpers import LISINOPRIL_10, draft_row, start_draft
from tests.prescriptions.dosespot_support import enable_dosespot


@pytest.fixture
def vendor(app):
    """The sandbox on a real port, DoseSpot enabled against it, Dr. Lee linked to 2001."""
    server = enable_dosespot(app, SandboxServer())
    yield server
    server.stop()


def test_search_goes_to_the_vendor_and_matches_by_rxcui(app, chart, vendor, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert "can only be printed" not in page  # a connector is on
    found = doctor.htmx_post(f"/prescriptions/{draft_id}/drugs", {"drug_query": "lisinopril"})
    text = found.get_data(as_text=True)
    assert found.status_code == 200
    assert "from DoseSpot" in text and 'value="vendor:5001"' in text
    assert "Interaction checking is limited" not in text

    answer = doctor.post_form(f"/prescriptions/{draft_id}/drug", {"choice": "vendor:5001"})
    assert answer.status_code == 303
    row = draft_row(app, draft_id)
    assert (row.dispensable_drug_id, row.rxcui, row.drug) == (
        "5001",
        LISINOPRIL_10,
        "lisinopril 10 MG Oral Tablet",
    )
    assert row.ingredient_rxcuis == "29046"  # our knowledge's, for the checks


def test_a_vendor_product_we_cannot_match_says_its_checking_is_limited(
    app, chart, vendor, signed_in
):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    found = doctor.htmx_post(f"/prescriptions/{draft_id}/drugs", {"drug_query": "hydrocodone"})
    text = found.get_data(as_text=True)
    assert 'value="vendor:5012"' in text
    item = text[text.index('value="vendor:5012"') :].split("</button>", 1)[0]
    assert "Interaction checking is limited for this product" in item
    assert "C-II" in item  # the vendor's schedule, since our knowledge does not know it

    doctor.post_form(f"/prescriptions/{draft_id}/drug", {"choice": "vendor:5012"})
    row = draft_row(app, draft_id)
    assert (row.dispensable_drug_id, row.schedule, row.ingredient_rxcuis) == ("5012", 2, None)
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert "Interaction checking is limited for this product" in page


def test_the_vendor_down_falls_back_to_the_catalog_and_says_so(app, chart, vendor, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    vendor.stop()
    found = doctor.htmx_post(f"/prescriptions/{draft_id}/drugs", {"drug_query": "lisinopril"})
    text = found.get_data(as_text=True)
    assert found.status_code == 200
    assert "DoseSpot e-prescribing could not be reached" in text
    assert "clinic&#39;s own catalog" in text
    assert f'value="rxcui:{LISINOPRIL_10}"' in text


def test_the_pharmacy_is_found_at_the_vendor_and_put_on_the_draft(app, chart, vendor, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    found = doctor.htmx_post(
        f"/prescriptions/{draft_id}/pharmacies", {"pharmacy_name": "main", "pharmacy_zip": ""}
    )
    text = found.get_data(as_text=True)
    assert "Sandbox Pharmacy Main Street" in text and 'name="pharmacy_id" value="3001"' in text
    answer = doctor.post_form(
        f"/prescriptions/{draft_id}/pharmacy",
        {"pharmacy_id": "3001", "pharmacy_label": "Sandbox Pharmacy Main Street, 12 Main Street"},
    )
    assert answer.status_code == 303
    row = draft_row(app, draft_id)
    assert (row.pharmacy_id, row.pharmacy_name) == (
        "3001",
        "Sandbox Pharmacy Main Street, 12 Main Street",
    )


def test_without_a_connector_the_pharmacy_search_is_refused_in_words(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    found = doctor.htmx_post(f"/prescriptions/{draft_id}/pharmacies", {"pharmacy_name": "main"})
    assert "can only be printed" in found.get_data(as_text=True)

"""ICD-10-CM search: billable codes only, by code prefix or words, fast."""

from __future__ import annotations

import time

from portal.terminology import icd10
from tests.charting.lists_helpers import text_of


def test_code_prefix_finds_billable_codes_only():
    found = icd10.search("E11")
    assert found and all(d.code.startswith("E11.") for d in found)
    assert "E11" not in [d.code for d in found]  # the category itself is not billable
    assert len(found) == 20


def test_code_without_dot_and_lower_case():
    assert [d.code for d in icd10.search("e119")] == ["E11.9"]


def test_words_find_the_common_code_first():
    codes = [d.code for d in icd10.search("type 2 diabetes")]
    assert "E11.9" in codes[:3]
    for diagnosis in icd10.search("type 2 diabetes"):
        words = diagnosis.description.lower().replace(",", " ").split()
        assert {"type", "2", "diabetes"} <= set(words), diagnosis


def test_word_prefixes_match_as_typed():
    assert "E11.9" in [d.code for d in icd10.search("type 2 diab")]
    assert icd10.search("essential hypert")[0].code == "I10"


def test_nothing_for_too_short_or_unknown():
    assert icd10.search("") == []
    assert icd10.search("e") == []
    assert icd10.search("xyzzyq") == []


def test_billable_check():
    assert icd10.billable("E11.9").description == "Type 2 diabetes mellitus without complications"
    assert icd10.billable("e119").code == "E11.9"
    assert icd10.billable("E11") is None  # a category
    assert icd10.billable("Q99.99") is None  # no such code
    assert icd10.billable("") is None


def test_search_takes_a_few_milliseconds():
    icd10.search("warm up")  # the index is built once per process
    queries = ["E11", "type 2 diabetes", "fracture", "hypertension", "asthma", "chronic kid"]
    start = time.perf_counter()
    for _ in range(10):
        for query in queries:
            icd10.search(query)
    per_search_ms = (time.perf_counter() - start) * 1000 / (10 * len(queries))
    assert per_search_ms < 10, per_search_ms


def test_search_route_answers_options_for_htmx(app, signed_in):
    nurse = signed_in("nurse")
    response = nurse.get("/chart/icd10?q=type+2+diabetes", headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = text_of(response)
    assert 'role="option"' in html and 'data-code="E11.9"' in html
    assert "<html" not in html
    page = nurse.get("/chart/icd10?q=E11.9")
    assert "<html" in text_of(page) and "E11.9" in text_of(page)


def test_search_route_escapes_the_query(app, signed_in):
    response = signed_in("drlee").get("/chart/icd10?q=<script>alert(1)</script>zz")
    html = text_of(response)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;" in html


def test_front_desk_cannot_search(app, signed_in):
    assert signed_in("front_desk").get("/chart/icd10?q=E11").status_code == 403

"""ICD-10-CM search finds what clinicians type (abbreviations, plain words) and ranks the
code primary care means first; preferred codes (favourites, the clinic's use) come before."""

from __future__ import annotations

import pytest

from portal.terminology import icd10


def codes(query, **kw) -> list[str]:
    return [d.code for d in icd10.search(query, **kw)]


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("HTN", "I10"),
        ("htn", "I10"),
        ("high blood pressure", "I10"),
        ("hypertension", "I10"),
        ("DM2", "E11.9"),
        ("T2DM", "E11.9"),
        ("type 2 DM", "E11.9"),
        ("HLD", "E78.5"),
        ("CHF", "I50.9"),
        ("COPD", "J44.9"),
        ("GERD", "K21.9"),
        ("UTI", "N39.0"),
        ("URI", "J06.9"),
        ("CKD", "N18.30"),
        ("CAD", "I25.10"),
        ("AFib", "I48.91"),
        ("OA", "M19.90"),
        ("OA knee", "M17.9"),
        ("LBP", "M54.50"),
        ("MDD", "F32.9"),
        ("GAD", "F41.1"),
        ("ADHD", "F90.9"),
        ("OSA", "G47.33"),
        ("BPH", "N40.0"),
        ("E11", "E11.9"),
    ],
)
def test_what_clinicians_type_finds_the_usual_code_first(query, first):
    assert codes(query)[0] == first


def test_hypertension_puts_essential_hypertension_before_rarer_kinds():
    found = codes("hypertension")
    assert found[0] == "I10"
    # Neonatal (P29.2) and portal (K76.6) hypertension are still found, further down.
    assert found.index("I10") < found.index("P29.2")
    assert found.index("I10") < found.index("K76.6")


def test_an_injury_offers_the_initial_encounter_before_sequelae():
    found = codes("S72.0")
    assert found and found[0].endswith("A")


def test_preferred_codes_come_first_in_the_order_given_when_they_match():
    found = codes("hypertension", preferred=["K76.6", "E11.9", "P29.2"])
    assert found[:3] == ["K76.6", "P29.2", "I10"]  # E11.9 does not match: not shown
    assert "E11.9" not in found
    assert codes("E11", preferred=["E11.65", "I10"])[:2] == ["E11.65", "E11.9"]
    # Unknown or non-billable preferences are ignored, not errors.
    assert codes("HTN", preferred=["XYZ", "E11", ""])[0] == "I10"


def test_limit_holds_with_preferences():
    assert len(icd10.search("fracture", limit=5, preferred=["S72.001A"])) == 5


def test_warm_up_builds_the_index_once():
    icd10.warm_up()
    icd10.warm_up()  # a second call starts nothing more
    assert icd10.search("HTN")[0].code == "I10"
    assert icd10._lazy.built


def test_a_code_the_library_lists_twice_is_offered_once():
    assert codes("R99") == ["R99"]
    assert codes("ill-defined and unknown cause of mortality").count("R99") == 1

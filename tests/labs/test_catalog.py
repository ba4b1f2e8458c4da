"""The lab test catalog and the lab units table."""

from __future__ import annotations

from portal.terminology import lab_tests
from portal.terminology.lab_units import to_ucum


def test_the_catalog_has_the_common_outpatient_tests_each_with_its_source():
    catalog = lab_tests.catalog()
    assert len(catalog) >= 100
    for code in ("58410-2", "24323-8", "24321-2", "24331-1", "4548-4", "3016-3", "3024-7",
                 "24356-8", "34714-6", "5902-2", "1989-3", "2857-1", "2106-3", "2276-4",
                 "2132-9", "2284-8", "19123-9", "1988-5", "30341-2", "3084-1", "3040-3",
                 "56888-1"):  # fmt: skip
        assert code in catalog, code
    assert all(
        test.verified_by and lab_tests.is_valid_loinc(test.loinc) for test in catalog.values()
    )
    assert catalog["24331-1"].fasting and catalog["24331-1"].is_panel
    assert catalog["4548-4"].long_name == "Hemoglobin A1c/Hemoglobin.total in Blood"


def test_every_panel_member_is_itself_in_the_catalog():
    catalog = lab_tests.catalog()
    panels = [test for test in catalog.values() if test.is_panel]
    assert len(panels) >= 10
    assert all(test.members and set(test.members) <= set(catalog) for test in panels)
    assert set(catalog["24331-1"].members) == {"2093-3", "2571-8", "2085-9", "13457-7"}


def test_a_wrong_check_digit_is_caught():
    assert lab_tests.is_valid_loinc("4548-4")
    assert not lab_tests.is_valid_loinc("4548-5")
    assert not lab_tests.is_valid_loinc("4548")
    assert not lab_tests.is_valid_loinc("")


def test_search_as_you_type():
    assert [t.loinc for t in lab_tests.search("lipid")][:2] == ["24331-1", "57698-3"]
    assert lab_tests.search("a1c")[0].loinc == "4548-4"
    assert lab_tests.search("tsh")[0].loinc == "3016-3"
    assert lab_tests.search("4548-4")[0].name == "Hemoglobin A1c"
    assert lab_tests.search("") == []
    assert lab_tests.search("zzzz") == []


def test_lab_units_are_read_as_ucum_and_unknown_units_are_kept():
    assert to_ucum("mg/dl") == "mg/dL"
    assert to_ucum("K/uL") == "10*3/uL"
    assert to_ucum("x10E3/uL") == "10*3/uL"
    assert to_ucum("mIU/L") == "m[IU]/L"
    assert to_ucum("uIU/mL") == "u[IU]/mL"
    assert to_ucum("mmol/L") == "mmol/L"
    assert to_ucum("%") == "%"
    assert to_ucum("furlongs") == "furlongs"
    assert to_ucum("  ") is None
    assert to_ucum(None) is None

"""The shipped terminology data files hold only real codes: every ICD-10-CM code of the
synonyms and the primary-care ranking exists in the tabular list and is billable; every
allergy class has a stable, well-formed, unique code and named members."""

from __future__ import annotations

import re

import pytest
import simple_icd_10_cm as icd

from portal.terminology import allergy_classes, icd10
from portal.terminology.rxnorm import DRUG_INGREDIENTS


def _synonym_codes() -> list[tuple[str, str]]:
    return [(term, code) for code, terms in icd10.synonyms().items() for term in terms]


@pytest.mark.parametrize(("term", "code"), _synonym_codes())
def test_every_synonym_names_a_billable_code_of_the_tabular_list(term, code):
    assert icd.is_valid_item(code), (term, code)
    assert icd.is_leaf(code), f"{term}: {code} is a category, not billable"


def test_the_ranking_holds_billable_codes_once_each():
    ranking = icd10.primary_care_ranking()
    assert len(ranking) >= 100
    assert len(set(ranking)) == len(ranking), "a code ranked twice"
    for code in ranking:
        assert icd.is_valid_item(code) and icd.is_leaf(code), code


def test_the_abbreviations_the_issue_names_are_shipped():
    terms = {term.lower() for term, _ in _synonym_codes()}
    for abbreviation in [
        "htn",
        "dm2",
        "t2dm",
        "hld",
        "chf",
        "copd",
        "gerd",
        "uti",
        "uri",
        "ckd",
        "cad",
        "afib",
        "oa",
        "lbp",
        "mdd",
        "gad",
        "adhd",
        "osa",
        "bph",
    ]:
        assert abbreviation in terms, abbreviation


CODE = re.compile(r"^(ATC:[A-Z][0-9]{2}[A-Z]{0,2}|PORTAL:[a-z0-9-]+)$")


def test_allergy_classes_have_unique_well_formed_codes_and_members():
    classes = allergy_classes.all_classes()
    assert len({c.code for c in classes}) == len(classes)
    assert len({c.name.lower() for c in classes}) == len(classes)
    for allergy_class in classes:
        assert CODE.match(allergy_class.code), allergy_class.code
        assert len(allergy_class.code) <= 32  # the column's width
        assert allergy_class.members, allergy_class.name
        assert all(m == m.strip() and m for m in allergy_class.members)
        if allergy_class.code.startswith("ATC:"):
            assert allergy_class.code[4:] in allergy_class.atc
        if allergy_class.med_rt_epc:
            assert re.match(r"^N\d{10}$", allergy_class.med_rt_epc)


def test_the_classes_the_issue_names_are_shipped():
    names = {c.name for c in allergy_classes.all_classes()}
    assert {
        "Penicillins",
        "Cephalosporins",
        "Carbapenems",
        "Sulfonamide antibiotics",
        "NSAIDs",
        "Opioids",
        "Macrolides",
        "Fluoroquinolones",
        "Tetracyclines",
        "ACE inhibitors",
        "Statins",
        "Anticonvulsants (aromatic)",
        "Iodinated contrast media",
        "Local anesthetics (amide)",
        "Local anesthetics (ester)",
    } <= names


def test_the_coded_drugs_fall_in_their_classes():
    def codes_of(ingredient):
        return {c.code for c in allergy_classes.classes_containing(ingredient)}

    assert codes_of("amoxicillin") == {"ATC:J01C"}
    assert codes_of("Cephalexin") == {"PORTAL:cephalosporins"}
    assert codes_of("sulfamethoxazole") == {"PORTAL:sulfonamide-antibiotics"}
    assert codes_of("trimethoprim") == set()  # J01E's non-sulfonamide partner
    assert codes_of("ibuprofen") == {"PORTAL:nsaids"}
    assert codes_of("lidocaine") == {"ATC:N01BB"}
    assert codes_of("acetaminophen") == set()
    # The RxNorm table's antibiotics and analgesics that belong to a class are members of it.
    for ingredient in ("penicillin G", "ceftriaxone", "azithromycin", "levofloxacin"):
        assert ingredient in DRUG_INGREDIENTS and codes_of(ingredient), ingredient


def test_class_names_and_aliases_are_found_in_any_case():
    assert allergy_classes.find_class("penicillins").code == "ATC:J01C"
    assert allergy_classes.find_class("  Sulfa ").name == "Sulfonamide antibiotics"
    assert allergy_classes.find_class("NSAID").name == "NSAIDs"
    assert allergy_classes.find_class("amoxicillin") is None
    assert allergy_classes.by_code("ATC:J01DH").name == "Carbapenems"

"""The shipped drug knowledge: its data files hold consistent, sourced codes (every product's
ingredients named in the ingredient table, the controlled drugs scheduled, the classes ATC),
local search ranks as a prescriber types, the allergy groups and their cross-sensitivities
answer both ways, and unreadable data refuses loudly (``KnowledgeUnavailable``)."""

from __future__ import annotations

import threading

import pytest

from portal.terminology import allergy_classes, drugs


@pytest.fixture
def knowledge():
    return drugs.knowledge()


@pytest.fixture
def fresh_cache():
    """Tests that point the loader at other files start and end with nothing cached."""
    drugs.forget_loaded()
    yield
    drugs.forget_loaded()


def _products_with(knowledge, ingredient: str) -> list[drugs.DrugProduct]:
    return [p for p in knowledge.products() if ingredient in p.ingredient_names]


# -- the data files ----------------------------------------------------------------------------


def test_the_catalog_holds_at_least_300_products_each_sourced(knowledge):
    products = knowledge.products()
    assert len(products) >= 300
    assert len({p.rxcui for p in products}) == len(products)
    rows = drugs._data_rows(drugs.PRODUCTS_FILE)
    assert all(row["verified_by"] for row in rows), "a product without its verification source"
    for product in products:
        assert product.rxcui.isdigit(), product
        assert product.tty in ("SCD", "SBD"), product
        assert (product.brand is not None) == (product.tty == "SBD"), product
        assert product.dose_form and product.route and product.strength, product
        assert product.schedule in (None, 2, 3, 4, 5), product


def test_every_product_ingredient_is_in_the_ingredient_table(knowledge):
    ingredients = knowledge.ingredients()
    for product in knowledge.products():
        assert product.ingredient_rxcuis, product
        for rxcui in product.ingredient_rxcuis:
            assert rxcui in ingredients, (product.name, rxcui)
        # each ingredient named in the product's name (salts aside) is one we list
        for name in product.ingredient_names:
            assert name.split()[0] in product.name.lower(), (product.name, name)


@pytest.mark.parametrize(
    ("name", "rxcui"),
    [
        ("lisinopril", "29046"),
        ("spironolactone", "9997"),
        ("warfarin", "11289"),
        ("amoxicillin", "723"),
        ("acetaminophen", "161"),
        ("oxycodone", "7804"),
        ("alprazolam", "596"),
        ("tramadol", "10689"),
        ("sertraline", "36437"),
        ("apixaban", "1364430"),
        ("amiloride", "644"),
    ],
)
def test_well_known_ingredient_codes(knowledge, name, rxcui):
    assert knowledge.ingredient_by_name(name) == rxcui
    assert knowledge.ingredient_name(rxcui) == name


def test_well_known_product_codes(knowledge):
    assert knowledge.product("314076").name == "lisinopril 10 MG Oral Tablet"
    assert knowledge.product("197361").name == "amlodipine 5 MG Oral Tablet"
    assert knowledge.product("1049621").ingredient_rxcuis == ("7804",)
    assert knowledge.product("0") is None
    assert knowledge.product("") is None


@pytest.mark.parametrize(
    ("ingredient", "schedule"),
    [
        ("oxycodone", 2),
        ("hydrocodone", 2),
        ("morphine", 2),
        ("methylphenidate", 2),
        ("amphetamine", 2),
        ("fentanyl", 2),
        ("alprazolam", 4),
        ("lorazepam", 4),
        ("zolpidem", 4),
        ("tramadol", 4),
        ("pregabalin", 5),
        ("brivaracetam", 5),
        ("clobazam", 4),
        ("oxazepam", 4),
    ],
)
def test_controlled_drugs_carry_their_dea_schedule(knowledge, ingredient, schedule):
    products = _products_with(knowledge, ingredient)
    assert products, f"no {ingredient} product shipped"
    for product in products:
        assert product.schedule == schedule, product.name
        assert product.controlled


def test_codeine_is_cii_alone_ciii_with_a_non_narcotic_and_cv_in_liquids(knowledge):
    for product in _products_with(knowledge, "codeine"):
        if len(product.ingredient_names) == 1:
            assert product.schedule == 2, product.name
        elif product.dose_form in ("Oral Solution", "Oral Suspension"):
            assert product.schedule == 5, product.name
        else:
            assert product.schedule == 3, product.name


def test_uncontrolled_drugs_have_no_schedule(knowledge):
    for ingredient in ("lisinopril", "amoxicillin", "warfarin", "sertraline", "gabapentin"):
        for product in _products_with(knowledge, ingredient):
            assert product.schedule is None, product.name


def test_the_interaction_rules_have_products_to_fire_on(knowledge):
    present = {name for p in knowledge.products() for name in p.ingredient_names}
    for ingredient in (
        "lisinopril",
        "spironolactone",
        "triamterene",
        "warfarin",
        "apixaban",
        "clarithromycin",
        "ciprofloxacin",
        "simvastatin",
        "fluoxetine",
        "tramadol",
        "amiodarone",
        "digoxin",
        "lithium carbonate",
        "methotrexate",
        "sulfamethoxazole",
        "oxycodone",
        "alprazolam",
        "haloperidol",
        "quetiapine",
        "naproxen",
        "celecoxib",
        "meloxicam",
        "omeprazole",
        "clopidogrel",
        "eplerenone",
        "fluvoxamine",
        "pimozide",
        "clozapine",
        "tacrolimus",
        "amiloride",
    ):
        assert ingredient in present, ingredient


def test_amiloride_and_the_hydralazine_nitrate_combination_as_vsac_codes_them(knowledge):
    """Products added from a VSAC value set expansion (2.16.840.1.113762.1.4.1248.170 and
    .164 in cqframework/ecqm-content-qicore-2024): the code, the name, the ingredients, the
    class the duplicate check compares, and the shipped rule that now fires on amiloride."""
    from portal.terminology.interactions import interactions_between

    amiloride = knowledge.product("977880")
    assert amiloride.name == "amiloride hydrochloride 5 MG Oral Tablet"
    assert amiloride.ingredient_rxcuis == ("644",)
    assert [c.code for c in knowledge.classes_of("644")] == ["C03DB"]
    combined = knowledge.product("977883")
    assert set(combined.ingredient_rxcuis) == {"644", "5487"}
    bidil = knowledge.product("905377")
    assert set(bidil.ingredient_rxcuis) == {"5470", "6058"}
    assert "C01DA" in {c.code for c in knowledge.classes_of("6058")}  # an organic nitrate
    found = interactions_between(amiloride.ingredient_rxcuis, ["29046"])  # lisinopril
    assert found and found[0].rule.severity == "high"


def test_classes_are_atc_level_4_of_listed_ingredients(knowledge):
    ingredients = knowledge.ingredients()
    for row in drugs._data_rows(drugs.CLASSES_FILE):
        assert row["ingredient_rxcui"] in ingredients, row
        assert len(row["atc_code"]) == 7 and row["class_code"] == row["atc_code"][:5], row
        assert row["verified_by"], row
    assert [c.code for c in knowledge.classes_of("29046")] == ["C09AA"]
    assert [c.code for c in knowledge.classes_of("9997")] == ["C03DA"]
    assert [c.code for c in knowledge.classes_of("36437")] == ["N06AB"]
    assert {c.code for c in knowledge.classes_of("1191")} == {"B01AC", "N02BA"}  # aspirin
    assert all(c.system == "ATC" for c in knowledge.classes_of("83367"))
    assert knowledge.classes_of("no-such") == []


def test_statins_share_a_class_and_ssris_share_theirs(knowledge):
    statins = {"atorvastatin", "simvastatin", "rosuvastatin", "pravastatin"}
    codes = {
        c.code for name in statins for c in knowledge.classes_of(knowledge.ingredient_by_name(name))
    }
    assert codes == {"C10AA"}
    assert {"29046", "3827", "35296"} <= set(knowledge.ingredients_in_class("C09AA"))


# -- search as the prescriber types ------------------------------------------------------------


def test_every_keystroke_of_a_name_finds_it(knowledge):
    for length in range(3, len("lisinopril") + 1):
        typed = "lisinopril"[:length]
        results = knowledge.search(typed)
        assert results, typed
        assert "lisinopril" in results[0].ingredient_names, typed


def test_search_matches_the_start_of_any_word_and_every_word_typed(knowledge):
    names = [p.name for p in knowledge.search("lisinopril 10")]
    assert names[0] == "lisinopril 10 MG Oral Tablet"
    assert all("10" in name for name in names)
    # "hydro" starts a word of hydrochlorothiazide products, not the middle of one
    assert all(
        any(word.startswith("hydro") for word in p.name.lower().split())
        or any(n.startswith("hydro") for n in p.ingredient_names)
        for p in knowledge.search("hydro", limit=50)
    )
    assert knowledge.search("inopril") == []  # the middle of a word does not match


def test_the_ingredient_alone_ranks_before_its_combinations(knowledge):
    results = knowledge.search("amox", limit=30)
    singles = [len(p.ingredient_names) == 1 for p in results]
    assert singles[0]
    assert singles == sorted(singles, reverse=True), [p.name for p in results]
    assert any(len(p.ingredient_names) == 2 for p in results)  # amoxicillin / clavulanate


def test_common_strengths_rank_first(knowledge):
    first = knowledge.search("lisinopril")[0]
    assert first.common and first.tty == "SCD"
    assert knowledge.search("amlodipine")[0].common


def test_a_brand_name_finds_its_branded_product(knowledge):
    results = knowledge.search("prinivil")
    assert results and results[0].tty == "SBD" and results[0].brand == "Prinivil"
    assert results[0].ingredient_rxcuis == ("29046",)


def test_typed_abbreviations_and_case(knowledge):
    assert [p.rxcui for p in knowledge.search("LISINOPRIL")] == [
        p.rxcui for p in knowledge.search("lisinopril")
    ]
    extended = knowledge.search("metformin er")
    assert extended and all("Extended Release" in p.dose_form for p in extended)
    assert knowledge.search("amox susp")[0].dose_form == "Oral Suspension"


def test_empty_unknown_and_limited_searches(knowledge):
    assert knowledge.search("") == []
    assert knowledge.search("   ") == []
    assert knowledge.search("zzzz") == []
    assert len(knowledge.search("a", limit=5)) == 5
    assert knowledge.search("a", limit=0) == []


def test_ingredient_by_name_folds_salts_and_refuses_the_unknown(knowledge):
    assert knowledge.ingredient_by_name("Metformin Hydrochloride") == "6809"
    assert knowledge.ingredient_by_name("metformin HCl") == "6809"
    assert knowledge.ingredient_by_name("  LISINOPRIL ") == "29046"
    assert knowledge.ingredient_by_name("not a drug") is None
    assert knowledge.ingredient_by_name("hydrochloride") is None
    assert knowledge.ingredient_by_name("Amoxicillin 500 MG Oral Capsule") == "723"
    assert knowledge.ingredient_by_name("24 HR metformin hydrochloride 500 MG Tab") == "6809"
    assert knowledge.ingredient_by_name("") is None


# -- allergy groups and cross-sensitivity -------------------------------------------------------


def test_allergy_groups_of_an_ingredient(knowledge):
    assert [g.code for g in knowledge.allergy_groups_of("723")] == ["ATC:J01C"]  # amoxicillin
    assert [g.code for g in knowledge.allergy_groups_of("2231")] == ["PORTAL:cephalosporins"]
    assert [g.code for g in knowledge.allergy_groups_of("7804")] == ["ATC:N02A"]  # oxycodone
    assert [g.code for g in knowledge.allergy_groups_of("596")] == ["PORTAL:benzodiazepines"]
    assert "PORTAL:nsaids" in {g.code for g in knowledge.allergy_groups_of("5640")}
    assert knowledge.allergy_groups_of("29046") == [allergy_classes.by_code("ATC:C09A")]
    assert knowledge.allergy_groups_of("6809") == []  # metformin: no allergy class


def test_member_rxcuis_agree_with_the_ingredient_table(knowledge):
    ingredients = knowledge.ingredients()
    for allergy_class in allergy_classes.all_classes():
        for name, rxcui in allergy_class.member_rxcuis:
            assert name in allergy_class.members, (allergy_class.code, name)
            assert ingredients.get(rxcui) == name.lower(), (allergy_class.code, name, rxcui)


def test_penicillins_and_cephalosporins_cross_both_ways_at_a_lower_severity(knowledge):
    assert "PORTAL:cephalosporins" in {g.code for g in knowledge.cross_sensitive_groups("ATC:J01C")}
    assert "ATC:J01C" in {g.code for g in knowledge.cross_sensitive_groups("PORTAL:cephalosporins")}
    assert "ATC:J01DH" in {g.code for g in knowledge.cross_sensitive_groups("ATC:J01C")}
    for pair in knowledge.cross_sensitivities("ATC:J01C"):
        assert pair.severity in ("moderate", "low")
        assert pair.note and pair.source


def test_groups_without_cross_sensitivity(knowledge):
    # sulfonamide antibiotics do not cross to non-antibiotic sulfonamides (see the data's about)
    assert knowledge.cross_sensitive_groups("PORTAL:sulfonamide-antibiotics") == []
    assert knowledge.cross_sensitive_groups("ATC:N01BA") == []  # ester / amide anaesthetics
    assert knowledge.cross_sensitive_groups("no-such-group") == []


# -- loading ---------------------------------------------------------------------------------------


def test_knowledge_is_loaded_once_and_shared_across_threads(fresh_cache):
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(drugs.knowledge())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(k) for k in seen}) == 1
    assert drugs.knowledge() is seen[0]


def test_an_unreadable_catalog_raises_knowledge_unavailable(fresh_cache, monkeypatch, tmp_path):
    monkeypatch.setattr(drugs, "PRODUCTS_FILE", tmp_path / "missing.csv")
    with pytest.raises(drugs.KnowledgeUnavailable):
        drugs.knowledge()
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"\xff\xfe not utf-8 \x00\x81")
    monkeypatch.setattr(drugs, "PRODUCTS_FILE", broken)
    with pytest.raises(drugs.KnowledgeUnavailable):
        drugs.knowledge()


def test_a_catalog_naming_an_unknown_ingredient_is_refused(fresh_cache, monkeypatch, tmp_path):
    bad = tmp_path / "drug_products.csv"
    bad.write_text(
        "rxcui,tty,name,brand,strength,dose_form,route,dea_schedule,ingredient_rxcuis,ndc,"
        "common,verified_by\n"
        "1,SCD,mystery 5 MG Oral Tablet,,5 MG,Oral Tablet,oral,,999999999,,,test\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(drugs, "PRODUCTS_FILE", bad)
    with pytest.raises(drugs.KnowledgeUnavailable, match="unknown ingredients"):
        drugs.knowledge()


def test_an_empty_catalog_is_refused(fresh_cache, monkeypatch, tmp_path):
    empty = tmp_path / "drug_products.csv"
    empty.write_text("# nothing\n", encoding="utf-8")
    monkeypatch.setattr(drugs, "PRODUCTS_FILE", empty)
    with pytest.raises(drugs.KnowledgeUnavailable):
        drugs.knowledge()


def test_after_a_failure_the_next_call_reads_again(fresh_cache, monkeypatch, tmp_path):
    shipped = drugs.PRODUCTS_FILE
    monkeypatch.setattr(drugs, "PRODUCTS_FILE", tmp_path / "missing.csv")
    with pytest.raises(drugs.KnowledgeUnavailable):
        drugs.knowledge()
    monkeypatch.setattr(drugs, "PRODUCTS_FILE", shipped)
    assert drugs.knowledge().product("314076") is not None

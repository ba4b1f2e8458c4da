"""The RxNorm RRF loader on a small hand-made release (tests/terminology/data/rxnorm_sample):
products, ingredients (direct, through components, through precise ingredients), brands, dose
forms, DEA schedules and NDCs; suppressed and other-source rows left out; ``flask rxnorm-load``
writes the instance catalog that ``drugs.knowledge()`` then prefers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from portal.terminology import drugs, rxnorm_rrf

SAMPLE = Path(__file__).with_name("data") / "rxnorm_sample"


@pytest.fixture
def catalog():
    rows, ingredients, skipped = rxnorm_rrf.build_catalog(SAMPLE)
    return {row["rxcui"]: row for row in rows}, ingredients, skipped


@pytest.fixture
def fresh_cache():
    drugs.forget_loaded()
    yield
    drugs.forget_loaded()


def test_products_are_the_sample_s_scd_and_sbd_only(catalog):
    products, _, skipped = catalog
    assert set(products) == {"314076", "206765", "1049621", "90000401", "308048"}
    assert "90000402" not in products  # suppressed
    assert "90000403" not in products  # another source (MTHSPL)
    assert skipped == 1  # 90000404: no ingredient relation


def test_a_clinical_drug_through_its_component(catalog):
    products, ingredients, _ = catalog
    lisinopril = products["314076"]
    assert lisinopril["tty"] == "SCD"
    assert lisinopril["name"] == "lisinopril 10 MG Oral Tablet"
    assert lisinopril["ingredient_rxcuis"] == "29046"
    assert lisinopril["dose_form"] == "Oral Tablet" and lisinopril["route"] == "oral"
    assert lisinopril["strength"] == "10 MG"
    assert lisinopril["dea_schedule"] == ""
    assert lisinopril["ndc"] == "99999000101"
    assert ingredients["29046"] == "lisinopril"


def test_a_branded_drug_takes_its_clinical_drug_s_ingredients_and_its_brand(catalog):
    products, _, _ = catalog
    branded = products["206765"]
    assert branded["tty"] == "SBD"
    assert branded["brand"] == "Prinivil"
    assert branded["ingredient_rxcuis"] == "29046"
    assert branded["ndc"] == ""  # the only NDC row is another source's


def test_an_ingredient_reached_through_its_precise_ingredient_and_the_schedule(catalog):
    products, _, _ = catalog
    oxycodone = products["1049621"]
    assert oxycodone["ingredient_rxcuis"] == "7804"
    assert oxycodone["dea_schedule"] == "2"
    assert oxycodone["ndc"] == "99999000201"  # the lowest of its NDCs


def test_a_combination_lists_every_ingredient_and_strength(catalog):
    products, ingredients, _ = catalog
    combination = products["90000401"]
    assert combination["ingredient_rxcuis"].split() == ["161", "5489"]
    assert combination["strength"] == "325 MG / 5 MG"
    assert combination["dea_schedule"] == "2"
    assert ingredients["5489"] == "hydrocodone"


def test_a_direct_has_ingredient_and_schedule_iv(catalog):
    products, _, _ = catalog
    assert products["308048"]["ingredient_rxcuis"] == "596"
    assert products["308048"]["dea_schedule"] == "4"


def test_rows_with_the_wrong_number_of_fields_are_refused(tmp_path):
    folder = tmp_path / "release"
    shutil.copytree(SAMPLE, folder)
    with (folder / "RXNREL.RRF").open("a", encoding="utf-8") as handle:
        handle.write("1|2|3|\n")
    with pytest.raises(rxnorm_rrf.RrfError, match=r"RXNREL\.RRF line"):
        rxnorm_rrf.build_catalog(folder)


def test_a_folder_without_the_files_is_refused(tmp_path):
    with pytest.raises(rxnorm_rrf.RrfError, match=r"RXNCONSO\.RRF not found"):
        rxnorm_rrf.build_catalog(tmp_path)


def test_files_are_found_in_a_release_s_subfolder(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "rrf")
    rows, _, _ = rxnorm_rrf.build_catalog(tmp_path)
    assert len(rows) == 5


def test_strength_of_a_name_with_a_quantity_prefix_and_a_brand():
    name = "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet [Glucophage]"
    assert rxnorm_rrf.strength_of(name, "Extended Release Oral Tablet") == "500 MG"
    name = "amoxicillin 80 MG/ML / clavulanate 11.4 MG/ML Oral Suspension"
    assert rxnorm_rrf.strength_of(name, "Oral Suspension") == "80 MG/ML / 11.4 MG/ML"


@pytest.mark.parametrize(
    ("dose_form", "route"),
    [
        ("Oral Tablet", "oral"),
        ("Extended Release Oral Capsule", "oral"),
        ("Metered Dose Inhaler", "inhalation"),
        ("Injectable Solution", "injection"),
        ("Prefilled Syringe", "injection"),
        ("Transdermal System", "transdermal"),
        ("Sublingual Tablet", "sublingual"),
        ("Ophthalmic Solution", "ophthalmic"),
        ("Topical Cream", "topical"),
        ("Nasal Spray", "nasal"),
    ],
)
def test_route_of_a_dose_form(dose_form, route):
    assert rxnorm_rrf.route_of(dose_form) == route


def test_the_command_writes_the_instance_catalog_that_knowledge_prefers(app, fresh_cache):
    result = app.test_cli_runner().invoke(args=["rxnorm-load", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert "5 products (3 controlled), 5 ingredients; 1 products left out" in result.output
    instance = Path(app.instance_path)
    assert (instance / "drug_products.csv").exists()
    assert (instance / "drug_ingredients.csv").exists()
    with app.app_context():
        loaded = drugs.knowledge()
        assert loaded.product("90000401").schedule == 2
        assert loaded.product("197361") is None  # the shipped catalog is replaced
        assert [p.rxcui for p in loaded.search("prinivil")] == ["206765"]
        assert loaded.classes_of("29046")[0].code == "C09AA"  # classes still ship
    # outside the app (no instance folder), the shipped catalog serves
    assert drugs.knowledge().product("197361") is not None


def test_the_command_refuses_a_folder_that_is_not_a_release(app, fresh_cache, tmp_path):
    result = app.test_cli_runner().invoke(args=["rxnorm-load", str(tmp_path)])
    assert result.exit_code != 0
    assert "RXNCONSO.RRF not found" in result.output
    assert not (Path(app.instance_path) / "drug_products.csv").exists()
    with app.app_context():
        assert drugs.knowledge().product("197361") is not None

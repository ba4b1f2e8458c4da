"""Conversions, parsing, the impossible/implausible checks, BMI and flags by age: no database."""

from __future__ import annotations

import pytest

from portal.charting.vitals.services import (
    ImpossibleValues,
    InvalidNumber,
    NeedsConfirmation,
    check_measurements,
    compute_bmi,
    flag_for,
    parse_measurement,
)
from portal.terminology.ucum import format_value, from_canonical, to_canonical

US = {"temperature": "[degF]", "weight": "[lb_av]", "length": "[in_i]"}
METRIC = {"temperature": "Cel", "weight": "kg", "length": "cm"}


def test_fahrenheit_to_celsius():
    assert to_canonical(98.6, "[degF]") == 37.0
    assert to_canonical(212, "[degF]") == 100.0
    assert to_canonical(101.3, "[degF]") == pytest.approx(38.5, abs=0.01)


def test_pounds_and_inches_to_canonical():
    assert to_canonical(180, "[lb_av]") == 81.647
    assert to_canonical(1, "[lb_av]") == 0.454  # stored to the gram
    assert to_canonical(70, "[in_i]") == 177.8
    assert to_canonical(65.5, "[in_i]") == 166.37


@pytest.mark.parametrize(
    ("unit", "typed"),
    [
        ("[degF]", [95.0, 97.7, 98.6, 99.9, 100.1, 101.3, 103.7, 104.9]),
        ("[lb_av]", [7.5, 8.8, 45.3, 120.0, 180.2, 199.9, 250.7]),
        ("[in_i]", [19.5, 20.1, 48.3, 65.5, 70.0, 72.9]),
        ("Cel", [36.6, 37.2, 38.9]),
        ("kg", [3.45, 70.25, 81.6]),
        ("cm", [50.5, 177.8]),
    ],
)
def test_values_typed_with_their_precision_show_back_unchanged(unit, typed):
    for value in typed:
        assert from_canonical(to_canonical(value, unit), unit) == value, value


def test_formatting_uses_the_units_symbol_and_decimals():
    assert format_value(from_canonical(37.0, "[degF]"), "[degF]") == "98.6 °F"
    assert format_value(from_canonical(81.647, "kg"), "kg") == "81.65 kg"
    assert format_value(from_canonical(177.8, "[in_i]"), "[in_i]") == "70.0 in"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "Enter a number"),
        ("12abc", "Enter a number"),
        ("nan", "Enter a number"),
        ("inf", "Enter a number"),
        ("1e3", "Enter a number"),
        ("9" * 5000, "Enter a number"),
        ("-5", "cannot be negative"),
    ],
)
def test_parse_refuses_what_is_not_a_measurement(text, message):
    with pytest.raises(InvalidNumber, match=message):
        parse_measurement(text, whole=False)


def test_parse_reads_numbers_and_blanks():
    assert parse_measurement("  98.6 ", whole=False) == 98.6
    assert parse_measurement("", whole=True) is None
    assert parse_measurement("120", whole=True) == 120
    with pytest.raises(InvalidNumber, match="whole number"):
        parse_measurement("120.5", whole=True)


def _refused(entered, units=METRIC, age=40) -> dict:
    with pytest.raises(ImpossibleValues) as caught:
        check_measurements(entered, units, age_years=age, confirmed=True)
    return caught.value.errors


@pytest.mark.parametrize(
    ("entered", "field"),
    [
        ({"systolic": 400, "diastolic": 80}, "systolic"),
        ({"weight": 0}, "weight"),
        ({"systolic": 120, "diastolic": 130}, "diastolic"),
        ({"systolic": 120, "diastolic": 120}, "diastolic"),
        ({"spo2": 101}, "spo2"),
        ({"temperature": 60}, "temperature"),
        ({"heart_rate": 0}, "heart_rate"),
        ({"pain_score": 11}, "pain_score"),
        ({"height": 400}, "height"),
        ({"systolic": 120}, "diastolic"),
    ],
)
def test_impossible_values_are_refused_beside_their_field(entered, field):
    assert field in _refused(entered)


def test_every_impossible_value_is_reported_at_once():
    errors = _refused({"systolic": 400, "diastolic": 80, "spo2": 150, "temperature": 60})
    assert set(errors) == {"systolic", "spo2", "temperature"}


def test_limits_are_stated_in_the_clinics_units():
    errors = _refused({"temperature": 150}, units=US)
    assert "°F" in errors["temperature"]
    assert "77.0 °F" in errors["temperature"] and "113.0 °F" in errors["temperature"]


def test_a_set_needs_at_least_one_measurement():
    assert "form" in _refused({"systolic": None, "weight": None})


def test_head_circumference_only_for_children_under_three():
    assert "head_circumference" in _refused({"head_circumference": 45}, age=3)
    columns = check_measurements({"head_circumference": 45}, METRIC, age_years=2, confirmed=False)
    assert columns["head_circumference_cm"] == 45


def test_implausible_values_need_confirmation():
    with pytest.raises(NeedsConfirmation) as caught:
        check_measurements({"heart_rate": 230}, METRIC, age_years=40, confirmed=False)
    assert set(caught.value.warnings) == {"heart_rate"}
    columns = check_measurements({"heart_rate": 230}, METRIC, age_years=40, confirmed=True)
    assert columns["heart_rate_per_min"] == 230


def test_an_implausible_bmi_asks_to_check_weight_and_height():
    with pytest.raises(NeedsConfirmation) as caught:
        check_measurements({"weight": 150, "height": 120}, METRIC, age_years=40, confirmed=False)
    assert "BMI of 104.2" in caught.value.warnings["height"]


def test_us_units_are_stored_canonical_with_bmi():
    columns = check_measurements(
        {"temperature": 98.6, "weight": 180, "height": 70, "systolic": 120, "diastolic": 80},
        US,
        age_years=40,
        confirmed=False,
    )
    assert columns["temperature_cel"] == 37.0
    assert columns["weight_kg"] == 81.647
    assert columns["height_cm"] == 177.8
    assert columns["bmi"] == 25.8
    assert columns["systolic_mmhg"] == 120 and isinstance(columns["systolic_mmhg"], int)


def test_bmi():
    assert compute_bmi(70, 175) == 22.9
    assert compute_bmi(70, None) is None
    assert compute_bmi(None, 175) is None


@pytest.mark.parametrize(
    ("name", "value", "age", "expected"),
    [
        ("heart_rate", 130, 40, "High"),
        ("heart_rate", 130, 0, None),  # normal for a baby
        ("heart_rate", 90, 0, "Low"),  # slow for a baby, normal for an adult
        ("heart_rate", 90, 40, None),
        ("respiratory_rate", 35, 0, None),
        ("respiratory_rate", 35, 40, "High"),
        ("systolic", 115, 4, "High"),
        ("systolic", 115, 40, None),
        ("systolic", 140, 40, "High"),
        ("systolic", 85, 40, "Low"),
        ("diastolic", 85, 40, "High"),
        ("diastolic", 85, 8, None),  # no diastolic norms for young children here
        ("temperature", 38.0, 40, "Fever"),
        ("temperature", 38.0, 1, "Fever"),
        ("temperature", 37.9, 1, None),
        ("temperature", 34.5, 40, "Low"),
        ("spo2", 92, 40, "Low"),
        ("bmi", 31.0, 40, "High"),
        ("bmi", 31.0, 10, None),  # children's BMI needs percentiles
    ],
)
def test_flags_by_age(name, value, age, expected):
    flag = flag_for(name, value, age)
    assert (flag.text if flag else None) == expected

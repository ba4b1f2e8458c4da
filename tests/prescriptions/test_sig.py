"""The directions (SIG) and the numbers beside them: the builder's exact text, every
frequency, plurals and decimals, oral liquids in mL, each free-text warning and the near
misses that must not fire, days supply, quantity in words, refills by schedule, the note to
the pharmacist, the effective date, and the two forms as a prescriber would post them.

The rules are pure functions; the forms are posted through a request context of the real
application and rendered with the house's form macros. Neither touches the database.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from flask import render_template_string

from portal import create_app
from portal.prescriptions import sig
from portal.prescriptions.forms import PrescriptionDetailsForm, SigForm
from portal.prescriptions.sig import (
    FREQUENCIES,
    build_sig,
    check_days_supply,
    check_directions,
    check_effective_date,
    check_pharmacist_note,
    check_refills,
    days_supply,
    directions_warnings,
    format_number,
    is_oral_liquid,
    latest_effective_date,
    parse_quantity,
    quantity_in_words,
)
from portal.transaction import Refused
from tests.support.database import SECRET_KEY

TODAY = date(2026, 12, 6)


# A route each dose unit is given by, for tests about something else.
ROUTE_OF = {
    "tablet": "oral",
    "capsule": "oral",
    "mL": "oral",
    "puff": "inhaled",
    "drop": "right_eye",
    "unit": "subcutaneous",
    "application": "topical",
    "patch": "transdermal",
    "suppository": "rectal",
    "spray": "nasal",
}


def text_of(**choices) -> str:
    return build_sig(**choices).text


def refusal(call, *args, **kwargs) -> Refused:
    with pytest.raises(Refused) as caught:
        call(*args, **kwargs)
    return caught.value


# --- The builder's text -------------------------------------------------------------------

STRUCTURED = [
    (
        {
            "dose_amount": "1",
            "dose_unit": "tablet",
            "route": "oral",
            "frequency": "once_daily",
            "duration_amount": 30,
        },
        "Take 1 tablet by mouth once daily for 30 days",
    ),
    (
        {
            "dose_amount": "2",
            "dose_unit": "puff",
            "route": "inhaled",
            "frequency": "every_4_hours",
            "as_needed": True,
            "as_needed_reason": "wheezing",
        },
        "Take 2 puffs by inhalation every 4 hours as needed for wheezing",
    ),
    (
        {
            "dose_amount": "5",
            "dose_unit": "mL",
            "route": "oral",
            "frequency": "twice_daily",
            "duration_amount": 10,
            "dose_form": "Oral Suspension",
        },
        "Take 5 mL by mouth twice daily for 10 days",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "tablet",
            "route": "oral",
            "frequency": "twice_daily",
            "duration_amount": 10,
            "extra_instructions": "with food",
        },
        "Take 1 tablet by mouth twice daily for 10 days with food",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "tablet",
            "route": "oral",
            "frequency": "at_bedtime",
            "extra_instructions": "Do not crush or chew.",
        },
        "Take 1 tablet by mouth at bedtime. Do not crush or chew.",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "tablet",
            "route": "sublingual",
            "frequency": "as_directed",
            "as_needed": True,
            "as_needed_reason": "chest pain",
        },
        "Place 1 tablet under the tongue as directed as needed for chest pain",
    ),
    (
        {
            "dose_amount": "10",
            "dose_unit": "unit",
            "route": "subcutaneous",
            "frequency": "at_bedtime",
        },
        "Inject 10 units subcutaneously at bedtime",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "unit",
            "route": "subcutaneous",
            "frequency": "once_daily",
        },
        "Inject 1 unit subcutaneously once daily",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "drop",
            "route": "both_eyes",
            "frequency": "four_times_daily",
            "duration_amount": 1,
            "duration_unit": "weeks",
        },
        "Instill 1 drop in both eyes four times daily for 1 week",
    ),
    (
        {
            "dose_amount": "2",
            "dose_unit": "drop",
            "route": "left_ear",
            "frequency": "three_times_daily",
            "duration_amount": 2,
            "duration_unit": "weeks",
        },
        "Instill 2 drops in the left ear three times daily for 2 weeks",
    ),
    (
        {"dose_amount": "2", "dose_unit": "spray", "route": "nasal", "frequency": "once_daily"},
        "Use 2 sprays in each nostril once daily",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "application",
            "route": "topical",
            "frequency": "twice_daily",
            "extra_instructions": "to the affected area",
        },
        "Apply 1 application topically twice daily to the affected area",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "patch",
            "route": "transdermal",
            "frequency": "once_weekly",
        },
        "Apply 1 patch to the skin once weekly",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "suppository",
            "route": "rectal",
            "frequency": "every_12_hours",
            "as_needed": True,
            "as_needed_reason": "nausea",
        },
        "Insert 1 suppository rectally every 12 hours as needed for nausea",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "suppository",
            "route": "vaginal",
            "frequency": "at_bedtime",
            "duration_amount": 7,
        },
        "Insert 1 suppository vaginally at bedtime for 7 days",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "mL",
            "route": "intramuscular",
            "frequency": "once_weekly",
            "duration_amount": 4,
            "duration_unit": "weeks",
        },
        "Inject 1 mL intramuscularly once weekly for 4 weeks",
    ),
    (
        {
            "dose_amount": "2.5",
            "dose_unit": "mL",
            "route": "inhaled",
            "frequency": "every_6_hours",
            "as_needed": True,
            "as_needed_reason": "shortness of breath",
        },
        "Inhale 2.5 mL via nebulizer every 6 hours as needed for shortness of breath",
    ),
    (
        {"dose_amount": "1", "dose_unit": "capsule", "route": "inhaled", "frequency": "once_daily"},
        "Inhale 1 capsule by inhalation once daily",
    ),
    (
        {
            "dose_amount": "1",
            "dose_unit": "capsule",
            "route": "oral",
            "frequency": "every_8_hours",
            "duration_amount": 1,
            "duration_unit": "days",
        },
        "Take 1 capsule by mouth every 8 hours for 1 day",
    ),
    (
        # White space typed into the free parts is one space in the directions.
        {
            "dose_amount": " 1 ",
            "dose_unit": "tablet",
            "route": "oral",
            "frequency": "every_4_to_6_hours",
            "as_needed": True,
            "as_needed_reason": "  pain\n or fever ",
            "extra_instructions": "\tnot more than 6 a day",
        },
        "Take 1 tablet by mouth every 4 to 6 hours as needed for pain or fever "
        "not more than 6 a day",
    ),
]


@pytest.mark.parametrize(("choices", "expected"), STRUCTURED)
def test_a_structured_sig_reads_in_plain_language(choices, expected):
    assert text_of(**choices) == expected


def test_a_reason_is_kept_only_when_as_needed():
    built = build_sig(
        dose_amount="1",
        dose_unit="tablet",
        route="oral",
        frequency="once_daily",
        as_needed=False,
        as_needed_reason="pain",
    )
    assert built.as_needed_reason == ""
    assert built.text == "Take 1 tablet by mouth once daily"


# Every standard frequency, with how many administrations a day it means at most.
FREQUENCY_TABLE = {
    "once_daily": ("once daily", Decimal(1)),
    "twice_daily": ("twice daily", Decimal(2)),
    "three_times_daily": ("three times daily", Decimal(3)),
    "four_times_daily": ("four times daily", Decimal(4)),
    "every_4_hours": ("every 4 hours", Decimal(6)),
    "every_4_to_6_hours": ("every 4 to 6 hours", Decimal(6)),
    "every_6_hours": ("every 6 hours", Decimal(4)),
    "every_8_hours": ("every 8 hours", Decimal(3)),
    "every_12_hours": ("every 12 hours", Decimal(2)),
    "every_morning": ("every morning", Decimal(1)),
    "every_evening": ("every evening", Decimal(1)),
    "at_bedtime": ("at bedtime", Decimal(1)),
    "every_other_day": ("every other day", Fraction(1, 2)),
    "twice_weekly": ("twice weekly", Fraction(2, 7)),
    "once_weekly": ("once weekly", Fraction(1, 7)),
    "once": ("once", Fraction(1)),
    "as_directed": ("as directed", None),
}


def test_the_frequency_table_is_the_one_tested():
    assert set(FREQUENCIES) == set(FREQUENCY_TABLE)


@pytest.mark.parametrize("code", sorted(FREQUENCY_TABLE))
def test_every_frequency_is_spelled_out_with_its_daily_count(code):
    phrase, per_day = FREQUENCY_TABLE[code]
    assert FREQUENCIES[code].per_day == per_day
    text = text_of(dose_amount="1", dose_unit="tablet", route="oral", frequency=code)
    assert text == f"Take 1 tablet by mouth {phrase}"
    assert directions_warnings(text) == []


def test_the_unit_table_is_the_one_tested():
    assert set(sig.DOSE_UNITS) == set(ROUTE_OF)
    # Every route can be chosen with at least one unit.
    assert set().union(*(unit.routes for unit in sig.DOSE_UNITS.values())) == set(sig.ROUTES)


@pytest.mark.parametrize(
    ("unit", "route"),
    sorted((unit.code, route) for unit in sig.DOSE_UNITS.values() for route in unit.routes),
)
def test_every_unit_by_each_of_its_routes_writes_directions_without_a_warning(unit, route):
    text = text_of(dose_amount="2", dose_unit=unit, route=route, frequency="once_daily")
    assert sig.ROUTES[route].phrase in text or text.startswith("Inhale 2 mL via nebulizer")
    assert f" 2 {sig.DOSE_UNITS[unit].plural} " in text
    assert directions_warnings(text) == []


@pytest.mark.parametrize(
    ("unit", "route", "message"),
    [
        ("tablet", "subcutaneous", "A dose in tablets is not given subcutaneously"),
        ("capsule", "right_eye", "A dose in capsules is not given in the right eye"),
        ("unit", "oral", "A dose in units is not given by mouth"),
        ("patch", "oral", "A dose in patches is not given by mouth"),
        ("suppository", "oral", "A dose in suppositories is not given by mouth"),
        ("drop", "intramuscular", "A dose in drops is not given intramuscularly"),
        ("puff", "topical", "A dose in puffs is not given topically"),
        ("mL", "right_eye", "A dose in mL is not given in the right eye"),
    ],
)
def test_a_unit_by_a_route_it_is_never_given_by_is_refused_beside_the_route(unit, route, message):
    refused = refusal(
        build_sig, dose_amount="1", dose_unit=unit, route=route, frequency="once_daily"
    )
    assert refused.field == "route"
    assert refused.message.startswith(message)
    assert "write the directions out" in refused.message


@pytest.mark.parametrize(
    ("amount", "unit", "expected"),
    [
        ("0.5", "tablet", "0.5 tablet"),
        (".5", "tablet", "0.5 tablet"),
        ("0.50", "tablet", "0.5 tablet"),
        ("1", "tablet", "1 tablet"),
        ("1.0", "tablet", "1 tablet"),
        ("1.5", "tablet", "1.5 tablets"),
        ("2", "tablet", "2 tablets"),
        ("10", "tablet", "10 tablets"),
        ("100", "unit", "100 units"),
        ("0.125", "tablet", "0.125 tablet"),
        ("2", "capsule", "2 capsules"),
        ("1", "patch", "1 patch"),
        ("2", "patch", "2 patches"),
        ("1", "suppository", "1 suppository"),
        ("2", "suppository", "2 suppositories"),
        ("7.5", "mL", "7.5 mL"),
        ("1", "mL", "1 mL"),
        ("1", "puff", "1 puff"),
        ("2", "application", "2 applications"),
    ],
)
def test_doses_are_written_with_a_leading_zero_no_trailing_zero_and_the_right_plural(
    amount, unit, expected
):
    text = text_of(dose_amount=amount, dose_unit=unit, route=ROUTE_OF[unit], frequency="once_daily")
    assert f" {expected} " in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10", "10"), ("1.50", "1.5"), ("0.5", "0.5"), ("100", "100"), ("2.000", "2")],
)
def test_format_number(value, expected):
    assert format_number(Decimal(value)) == expected


@pytest.mark.parametrize(
    ("choices", "field", "words"),
    [
        ({"dose_amount": ""}, "dose_amount", "Enter the dose"),
        ({"dose_amount": "0"}, "dose_amount", "more than zero"),
        ({"dose_amount": "-1"}, "dose_amount", "as a number"),
        ({"dose_amount": "abc"}, "dose_amount", "as a number"),
        ({"dose_amount": "."}, "dose_amount", "as a number"),
        ({"dose_amount": "1e3"}, "dose_amount", "as a number"),
        ({"dose_amount": "0.1234"}, "dose_amount", "at most 3 decimals"),
        ({"dose_amount": "10000"}, "dose_amount", "at most 9999"),
        ({"dose_unit": "pill"}, "dose_unit", "Choose the unit"),
        ({"dose_unit": None}, "dose_unit", "Choose the unit"),
        ({"route": "intravenous"}, "route", "Choose the route"),
        ({"frequency": "QD"}, "frequency", "Choose how often"),
        ({"duration_amount": 0}, "duration_amount", "at least 1 day"),
        ({"duration_amount": 366}, "duration_amount", "at most 365 days"),
        ({"duration_amount": 53, "duration_unit": "weeks"}, "duration_amount", "at most 365"),
        ({"duration_amount": 3, "duration_unit": "months"}, "duration_unit", "days or weeks"),
        ({"frequency": "once", "duration_amount": 1}, "duration_amount", "single dose"),
        ({"as_needed": True}, "as_needed_reason", "needed for"),
        ({"as_needed": True, "as_needed_reason": "  "}, "as_needed_reason", "needed for"),
        (
            {"as_needed": True, "as_needed_reason": "x" * 101},
            "as_needed_reason",
            "At most 100",
        ),
        ({"extra_instructions": "x" * 201}, "extra_instructions", "At most 200"),
    ],
)
def test_the_builder_refuses_beside_the_field(choices, field, words):
    base = {"dose_amount": "1", "dose_unit": "tablet", "route": "oral", "frequency": "once_daily"}
    refused = refusal(build_sig, **(base | choices))
    assert refused.field == field
    assert words in refused.message


# --- Oral liquids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dose_form", "product_route", "liquid"),
    [
        # The vendor's words: the form alone, the route beside it.
        ("Suspension", "Oral", True),
        ("Suspension", "By mouth", True),
        ("Suspension", None, False),
        ("Solution", "Ophthalmic", False),
        ("Tablet", "Oral", False),
        ("Metered Dose Inhaler", "Inhalation", False),
        ("Oral Suspension", "Oral", True),
        ("Tablet for Oral Suspension", "Oral", False),
    ],
)
def test_the_products_own_route_makes_a_liquid_oral(dose_form, product_route, liquid):
    assert is_oral_liquid(dose_form, product_route) is liquid


def test_the_vendors_oral_suspension_is_dosed_in_ml():
    refused = refusal(
        build_sig,
        dose_amount="1",
        dose_unit="tablet",
        route="oral",
        frequency="twice_daily",
        dose_form="Suspension",
        product_route="Oral",
    )
    assert refused.field == "dose_unit"
    assert (
        refusal(check_directions, "1 tsp twice daily", "Suspension", "Oral").field == "directions"
    )


@pytest.mark.parametrize(
    ("dose_form", "liquid"),
    [
        ("Oral Solution", True),
        ("Oral Suspension", True),
        ("Extended Release Oral Suspension", True),
        ("Syrup", True),
        ("Elixir", True),
        ("Oral Drops", True),
        ("Oral Tablet", False),
        ("Tablet for Oral Suspension", False),
        ("Powder for Oral Suspension", False),
        ("Ophthalmic Solution", False),
        ("Injectable Solution", False),
        ("Nasal Spray", False),
        ("", False),
        (None, False),
    ],
)
def test_which_dose_forms_are_oral_liquids(dose_form, liquid):
    assert is_oral_liquid(dose_form) is liquid


@pytest.mark.parametrize("unit", ["tablet", "drop", "unit", "application", "spray"])
def test_an_oral_liquid_is_dosed_in_ml_only(unit):
    refused = refusal(
        build_sig,
        dose_amount="5",
        dose_unit=unit,
        route="oral",
        frequency="twice_daily",
        dose_form="Oral Solution",
    )
    assert refused.field == "dose_unit"
    assert "mL" in refused.message


@pytest.mark.parametrize("spoon", ["teaspoon", "tablespoon"])
@pytest.mark.parametrize("dose_form", ["Oral Solution", "Oral Tablet", None])
def test_household_spoons_are_refused_whatever_the_product(spoon, dose_form):
    refused = refusal(
        build_sig,
        dose_amount="1",
        dose_unit=spoon,
        route="oral",
        frequency="twice_daily",
        dose_form=dose_form,
    )
    assert refused.field == "dose_unit"
    assert "dose in mL" in refused.message


def test_other_liquids_keep_their_units():
    assert (
        text_of(
            dose_amount="1",
            dose_unit="drop",
            route="right_eye",
            frequency="twice_daily",
            dose_form="Ophthalmic Solution",
        )
        == "Instill 1 drop in the right eye twice daily"
    )
    assert (
        text_of(
            dose_amount="1",
            dose_unit="tablet",
            route="oral",
            frequency="once_daily",
            dose_form="Tablet for Oral Suspension",
        )
        == "Take 1 tablet by mouth once daily"
    )


# --- Free-text directions ---------------------------------------------------------------------

FIRING = [
    ("Take 1.0 mg daily", "trailing_zero", "1.0", 'write "1"'),
    ("Take 2.50 mg daily", "trailing_zero", "2.50", 'write "2.5"'),
    ("Take 10.00 mL daily", "trailing_zero", "10.00", 'write "10"'),
    ("Give 1,000.0 units", "trailing_zero", "1,000.0", 'write "1,000"'),
    ("Take 5.0.", "trailing_zero", "5.0", 'write "5"'),
    ("Take .5 mg daily", "leading_zero", ".5", 'write "0.5"'),
    ("Take (.25 mg) daily", "leading_zero", ".25", 'write "0.25"'),
    ("Take 1 tablet .5.", "leading_zero", ".5", 'write "0.5"'),
    ("Inject 10 U at bedtime", "unit", "U", 'write "units"'),
    ("Inject 10U at bedtime", "unit", "U", 'write "units"'),
    ("inject 4 u/day", "unit", "u", 'write "units"'),
    ("Take 1000 IU daily", "international_unit", "IU", 'write "units"'),
    ("Take 1000 I.U. daily", "international_unit", "I.U.", 'write "units"'),
    ("Take 1 tablet QD", "qd", "QD", 'write "daily"'),
    ("Take 1 tablet q.d.", "qd", "q.d.", 'write "daily"'),
    ("Take 1 tablet qd.", "qd", "qd.", 'write "daily"'),
    ("Take 1 tablet Q1D", "qd", "Q1D", 'write "daily"'),
    ("Take 1 tablet OD", "od", "OD", '"in the right eye"'),
    ("Take 1 tablet QOD", "qod", "QOD", 'write "every other day"'),
    ("Take 1 tablet q.o.d.", "qod", "q.o.d.", 'write "every other day"'),
    ("MS 15 mg every 4 hours", "morphine_or_magnesium", "MS", "morphine sulfate"),
    ("MSO4 15 mg every 4 hours", "morphine_or_magnesium", "MSO4", "morphine sulfate"),
    ("MgSO4 1 g", "morphine_or_magnesium", "MgSO4", "magnesium sulfate"),
    ("mso4 15 mg", "morphine_or_magnesium", "mso4", "morphine sulfate"),
    ("Take 50 \u00b5g daily", "microgram", "\u00b5g", 'write "mcg"'),
    ("Take 50 \u03bcg daily", "microgram", "\u03bcg", 'write "mcg"'),
    ("Take 50ug daily", "microgram", "ug", 'write "mcg"'),
    ("Take 5 cc twice daily", "cc", "cc", 'write "mL"'),
    ("Take 5cc twice daily", "cc", "cc", 'write "mL"'),
    ("Take 1 tablet HS", "bedtime", "HS", 'write "at bedtime"'),
    ("Take 1 tablet qhs", "bedtime", "qhs", 'write "at bedtime"'),
    ("Take 1 tablet h.s.", "bedtime", "h.s.", 'write "at bedtime"'),
    ("Inject 10 units SC daily", "subcutaneous", "SC", 'write "subcutaneously"'),
    ("Inject 10 units SQ daily", "subcutaneous", "SQ", 'write "subcutaneously"'),
    ("Inject 10 units sub q daily", "subcutaneous", "sub q", 'write "subcutaneously"'),
    ("Inject 10 units sub-Q daily", "subcutaneous", "sub-Q", 'write "subcutaneously"'),
    ("Take 1 tablet TIW", "weekly", "TIW", "three times weekly"),
    ("Apply BIW", "weekly", "BIW", "twice weekly"),
    ("D/C after 5 days", "discontinue", "D/C", "in full"),
    ("Take 1 tsp twice daily", "household_spoon", "tsp", "in mL"),
    ("Take 1 teaspoonful twice daily", "household_spoon", "teaspoonful", "in mL"),
    ("Take 1 tablespoon twice daily", "household_spoon", "tablespoon", "in mL"),
]


@pytest.mark.parametrize(("text", "code", "found", "fix"), FIRING)
def test_each_error_prone_spelling_is_warned_with_its_fix(text, code, found, fix):
    warnings = directions_warnings(text)
    assert [(w.code, w.found) for w in warnings] == [(code, found)]
    assert fix in warnings[0].message
    assert warnings[0].message.startswith(f'"{found}"')


NEAR_MISSES = [
    "Use as directed",  # "U" is inside the word
    "USE 1 TABLET BY MOUTH DAILY",
    "Take 1 tablet by mouth once daily",
    "Take 1.05 mg daily",  # a zero inside the decimals is no trailing zero
    "Take 10 mg daily",  # a whole number
    "Take 0.5 mg daily",  # the leading zero is there
    "Take 100 mg daily",
    "Take 1 tablet AQDX",  # "QD" inside a word
    "Take 1 tablet QDaily",
    "Take drug with water",  # "ug" inside a word
    "Accept the sugar-free form",  # "cc" and "ug" inside words
    "Squeeze a small amount",  # "SQ" inside a word
    "Ms Smith to call",  # a title, not "MS"
    "Inject 10 units of insulin U-100",  # the labelled concentration
    "Inject 10 units of insulin U100",
    "Ask the pharmacist",  # "hs" never as a word
    "This is for pain",
    "Follow up on 12.10.2026",  # a dotted date, not a decimal
    "Take 1 tablet. 5 days supply",  # a sentence's full stop
    "Take 1 tablet daily.",
    "Discuss with the doctor",
    "Take two tablets each morning",
    "Dissolve 1 ODT on the tongue",  # "OD" inside a word
    "Give 1,000 units",
    "Give 1,000.5 units",
    "",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_do_not_fire(text):
    assert directions_warnings(text) == []


def test_several_warnings_come_in_the_order_written_each_once():
    warnings = directions_warnings("Take .5 mg QD and 1.0 mg QD with 5 cc")
    assert [w.code for w in warnings] == ["leading_zero", "qd", "trailing_zero", "cc"]


def test_typed_directions_are_one_line_within_the_vendors_limit():
    assert check_directions("  Take 1 tablet\nby mouth  daily ") == "Take 1 tablet by mouth daily"
    assert check_directions("x" * 1000) == "x" * 1000
    too_long = refusal(check_directions, "x" * 1001)
    assert too_long.field == "directions"
    assert "1,000" in too_long.message
    assert refusal(check_directions, " \n ").field == "directions"
    assert refusal(check_directions, None).field == "directions"


def test_written_directions_for_an_oral_liquid_are_refused_in_spoons():
    spoons = "Take 1 tsp by mouth twice daily"
    refused = refusal(check_directions, spoons, "Oral Suspension")
    assert refused.field == "directions"
    assert "mL" in refused.message
    assert check_directions(spoons, "Oral Tablet") == spoons  # a warning only, below
    assert check_directions("Take 5 mL by mouth twice daily", "Oral Suspension")


# --- Days supply --------------------------------------------------------------------------


def _sig(amount="1", unit="tablet", frequency="once_daily", **more):
    return build_sig(
        dose_amount=amount, dose_unit=unit, route=ROUTE_OF[unit], frequency=frequency, **more
    )


@pytest.mark.parametrize(
    ("built", "quantity", "dispense_unit", "expected"),
    [
        (_sig(), "30", "tablet", 30),
        (_sig(frequency="twice_daily"), "30", "tablet", 15),
        (_sig(frequency="twice_daily"), "25", "tablet", 12),  # rounded down
        (_sig(amount="0.5"), "15", "tablet", 30),
        (_sig(amount="2", frequency="three_times_daily"), "90", "tablet", 15),
        (_sig(unit="capsule", frequency="four_times_daily"), "40", "capsule", 10),
        (_sig(frequency="every_8_hours"), "21", "tablet", 7),
        (_sig(frequency="every_other_day"), "15", "tablet", 30),
        (_sig(frequency="once_weekly"), "4", "tablet", 28),
        (_sig(frequency="twice_weekly"), "8", "tablet", 28),
        # As needed counts the most the directions allow (a range: its shortest interval).
        (
            _sig(
                amount="2", frequency="every_4_to_6_hours", as_needed=True, as_needed_reason="pain"
            ),
            "24",
            "tablet",
            2,
        ),
        (
            _sig(frequency="every_6_hours", as_needed=True, as_needed_reason="pain"),
            "20",
            "tablet",
            5,
        ),
        (_sig(frequency="twice_daily", duration_amount=10), "30", "tablet", 10),  # the course
        (_sig(duration_amount=2, duration_unit="weeks"), "90", "tablet", 14),
        (_sig(frequency="four_times_daily"), "2", "tablet", 1),  # less than a day: one
        (_sig(), "1000", "tablet", 365),  # never more than a year
        (_sig(unit="patch", frequency="once_weekly"), "4", "patch", 28),
        (_sig(unit="suppository", frequency="twice_daily"), "12", "suppository", 6),
        # Not certain: no number.
        (_sig(frequency="once"), "1", "tablet", 1),  # a single dose
        (_sig(amount="2", frequency="once"), "4", "tablet", 1),
        (_sig(frequency="as_directed"), "30", "tablet", None),
        (_sig(unit="mL", frequency="twice_daily"), "150", "mL", None),  # liquids are not
        (_sig(unit="capsule"), "30", "tablet", None),  # units differ
        (_sig(unit="puff", frequency="four_times_daily"), "1", "inhaler", None),
        (None, "30", "tablet", None),
        (_sig(), None, "tablet", None),
    ],
)
def test_days_supply_is_worked_out_only_when_certain(built, quantity, dispense_unit, expected):
    amount = Decimal(quantity) if quantity is not None else None
    assert days_supply(built, amount, dispense_unit) == expected


def test_a_typed_days_supply_is_one_day_to_a_year():
    assert check_days_supply(1) == 1
    assert check_days_supply(365) == 365
    for days in (0, 366, -5):
        assert refusal(check_days_supply, days).field == "days_supply"


# --- Quantity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30", Decimal(30)),
        ("2.5", Decimal("2.5")),
        ("0.125", Decimal("0.125")),
        (" 90 ", Decimal(90)),
        ("9999", Decimal(9999)),
    ],
)
def test_a_quantity_is_a_positive_number_of_three_decimals_at_most(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    "text", ["", "0", "0.000", "-3", "abc", "1.2345", "10000", "1,000", "NaN", "Infinity", "3 tabs"]
)
def test_a_wrong_quantity_is_refused_beside_its_field(text):
    assert refusal(parse_quantity, text).field == "quantity"


@pytest.mark.parametrize(
    ("quantity", "words"),
    [
        ("30", "thirty (30)"),
        ("1", "one (1)"),
        ("12", "twelve (12)"),
        ("21", "twenty-one (21)"),
        ("90", "ninety (90)"),
        ("100", "one hundred (100)"),
        ("120", "one hundred twenty (120)"),
        ("115", "one hundred fifteen (115)"),
        ("1000", "one thousand (1000)"),
        ("2005", "two thousand five (2005)"),
        ("9999", "nine thousand nine hundred ninety-nine (9999)"),
        ("2.5", "two point five (2.5)"),
        ("0.5", "zero point five (0.5)"),
        ("7.25", "seven point two five (7.25)"),
        ("10.0", "ten (10)"),
        ("0.125", "zero point one two five (0.125)"),
    ],
)
def test_a_quantity_in_words_and_figures(quantity, words):
    assert quantity_in_words(Decimal(quantity)) == words


# --- Refills, note, effective date ------------------------------------------------------------


def test_schedule_two_has_no_refills():
    assert check_refills(0, schedule=2) == 0
    refused = refusal(check_refills, 1, schedule=2)
    assert refused.field == "refills"
    assert "schedule II" in refused.message


@pytest.mark.parametrize(
    ("refills", "schedule", "allowed"),
    [
        (0, None, True),
        (11, None, True),
        (12, None, False),
        (-1, None, False),
        (5, 3, True),
        (6, 3, False),
        (5, 4, True),
        (6, 4, False),
        (11, 5, True),
        (12, 5, False),
        (1, 2, False),
        (0, 2, True),
    ],
)
def test_refills_by_schedule(refills, schedule, allowed):
    if allowed:
        assert check_refills(refills, schedule) == refills
    else:
        assert refusal(check_refills, refills, schedule).field == "refills"


def test_refills_must_be_given():
    assert refusal(check_refills, None).field == "refills"


def test_the_note_to_the_pharmacist_is_210_characters_at_most():
    assert check_pharmacist_note("x" * 210) == "x" * 210
    assert check_pharmacist_note(None) == ""
    assert check_pharmacist_note("  Call if out of stock  ") == "Call if out of stock"
    refused = refusal(check_pharmacist_note, "x" * 211)
    assert refused.field == "pharmacist_note"
    assert "210" in refused.message


def test_the_effective_date_is_today_to_six_months_ahead():
    assert check_effective_date(None, TODAY) == TODAY
    assert check_effective_date(TODAY, TODAY) == TODAY
    assert check_effective_date(date(2027, 6, 6), TODAY) == date(2027, 6, 6)
    past = refusal(check_effective_date, TODAY - timedelta(days=1), TODAY)
    assert (past.field, past.message) == (
        "effective_date",
        "The effective date cannot be in the past.",
    )
    late = refusal(check_effective_date, date(2027, 6, 7), TODAY)
    assert late.field == "effective_date"
    assert late.message == "The effective date is at most 6 months ahead (by 6 June 2027)."


def test_a_schedule_two_prescription_takes_effect_within_90_days():
    assert check_effective_date(TODAY + timedelta(days=90), TODAY, schedule=2)
    refused = refusal(check_effective_date, TODAY + timedelta(days=91), TODAY, schedule=2)
    assert refused.field == "effective_date"
    assert refused.message == (
        "A schedule II prescription takes effect within 90 days (by 6 March 2027)."
    )


def test_six_months_after_a_long_month_end_is_the_short_months_last_day():
    assert latest_effective_date(date(2026, 8, 31)) == date(2027, 2, 28)
    assert latest_effective_date(date(2027, 8, 31)) == date(2028, 2, 29)
    assert latest_effective_date(date(2026, 12, 6), schedule=4) == date(2027, 6, 6)


# --- The forms --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def form_app(tmp_path_factory):
    """The real application, for its request context and templates; the forms read no rows."""
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "SECRET_KEY": SECRET_KEY,
            "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance-forms")),
        }
    )


def tag(page: str, element_id: str) -> str:
    """The opening tag of the element with this id."""
    match = re.search(rf'<[a-z]+ [^>]*id="{element_id}"[^>]*>', page)
    assert match, element_id
    return match.group(0)


def posted_sig(app, data: dict, **kwargs) -> SigForm:
    with app.test_request_context(method="POST", data={f"sig-{k}": v for k, v in data.items()}):
        form = SigForm(prefix="sig", **kwargs)
        form.validate()
        form.rendered = {
            name: render_template_string(
                '{% import "macros/forms.html" as forms %}{{ forms.field(f) }}', f=field
            )
            for name, field in form._fields.items()
        }
        return form


def posted_details(app, data: dict, **kwargs) -> PrescriptionDetailsForm:
    kwargs.setdefault("today", TODAY)
    with app.test_request_context(method="POST", data={f"rx-{k}": v for k, v in data.items()}):
        form = PrescriptionDetailsForm(prefix="rx", **kwargs)
        form.valid = form.validate()
        form.rendered = {
            name: render_template_string(
                '{% import "macros/forms.html" as forms %}{{ forms.field(f) }}', f=field
            )
            for name, field in form._fields.items()
        }
        return form


LISINOPRIL_SIG = {
    "dose_amount": "1",
    "dose_unit": "tablet",
    "route": "oral",
    "frequency": "once_daily",
    "duration_amount": "30",
    "duration_unit": "days",
}


def test_the_sig_form_builds_the_directions(form_app):
    form = posted_sig(form_app, LISINOPRIL_SIG)
    assert form.errors == {}
    assert form.directions_text == "Take 1 tablet by mouth once daily for 30 days"
    assert form.sig.dose_amount == Decimal(1)
    assert form.warnings == []


@pytest.mark.parametrize(("choices", "expected"), STRUCTURED)
def test_a_saved_sig_opens_in_the_form_as_it_was(form_app, choices, expected):
    """A draft, a favorite or a renewal keeps the structured SIG and reopens it."""
    saved = build_sig(**choices)
    posted = {k: v for k, v in saved.form_data().items() if v not in (False, None)}
    form = posted_sig(form_app, posted, dose_form=choices.get("dose_form"))
    assert form.errors == {}
    assert form.sig == saved
    assert form.directions_text == expected


def test_a_saved_sig_is_shown_filled_in_on_a_fresh_page(form_app):
    saved = build_sig(
        dose_amount="0.5",
        dose_unit="tablet",
        route="oral",
        frequency="every_other_day",
        as_needed=True,
        as_needed_reason="pain",
    )
    with form_app.test_request_context():
        form = SigForm(prefix="sig", data=saved.form_data())
        page = render_template_string(
            '{% import "macros/forms.html" as forms %}'
            "{% for f in form %}{{ forms.field(f) }}{% endfor %}",
            form=form,
        )
    assert 'value="0.5"' in tag(page, "sig-dose_amount")
    assert "checked" in tag(page, "sig-as_needed")
    assert 'value="pain"' in tag(page, "sig-as_needed_reason")
    assert 'value=""' in tag(page, "sig-duration_amount")
    assert '<option selected value="every_other_day">every other day</option>' in page
    assert '<option selected value="tablet">tablets</option>' in page
    assert "is-invalid" not in page


def test_the_sig_form_puts_a_refusal_beside_its_field(form_app):
    form = posted_sig(form_app, LISINOPRIL_SIG | {"dose_amount": ""})
    assert form.errors == {"dose_amount": ["Enter the dose."]}
    html = form.rendered["dose_amount"]
    assert '<label class="form-label" for="sig-dose_amount">Dose' in html
    assert 'aria-invalid="true"' in html
    assert 'id="sig-dose_amount-error">Enter the dose.</div>' in html


def test_the_sig_form_refuses_a_spoon_for_an_oral_liquid_beside_the_unit(form_app):
    form = posted_sig(
        form_app, LISINOPRIL_SIG | {"dose_unit": "teaspoon"}, dose_form="Oral Solution"
    )
    assert list(form.errors) == ["dose_unit"]
    assert "dose in mL" in form.rendered["dose_unit"]
    form = posted_sig(form_app, LISINOPRIL_SIG | {"dose_unit": "tablet"}, dose_form="Syrup")
    assert form.errors == {"dose_unit": ["An oral liquid is dosed in mL: choose mL."]}
    form = posted_sig(
        form_app,
        LISINOPRIL_SIG | {"dose_unit": "tablet"},
        dose_form="Suspension",
        product_route="Oral",
    )
    assert list(form.errors) == ["dose_unit"]
    form = posted_sig(form_app, LISINOPRIL_SIG | {"dose_unit": "mL"}, dose_form="Syrup")
    assert form.errors == {}
    assert form.directions_text == "Take 1 mL by mouth once daily for 30 days"


def test_the_sig_form_needs_a_reason_when_as_needed(form_app):
    form = posted_sig(form_app, LISINOPRIL_SIG | {"as_needed": "y"})
    assert form.errors == {"as_needed_reason": ["Say what it is needed for, e.g. pain."]}
    form = posted_sig(form_app, LISINOPRIL_SIG | {"as_needed": "y", "as_needed_reason": "pain"})
    assert form.directions_text.endswith("once daily as needed for pain for 30 days")


def test_the_sig_form_takes_written_directions_and_warns(form_app):
    form = posted_sig(form_app, {"write_out": "y", "directions": "Take 1.0 tab PO QD"})
    assert form.errors == {}
    assert form.sig is None
    assert form.directions_text == "Take 1.0 tab PO QD"
    assert [w.code for w in form.warnings] == ["trailing_zero", "qd"]
    form = posted_sig(form_app, {"write_out": "y", "directions": "x" * 1001})
    assert list(form.errors) == ["directions"]
    form = posted_sig(form_app, {"write_out": "y", "directions": ""})
    assert form.errors == {"directions": ["Enter the directions."]}
    form = posted_sig(
        form_app, {"write_out": "y", "directions": "1 teaspoon twice daily"}, dose_form="Syrup"
    )
    assert list(form.errors) == ["directions"]


def test_the_sig_form_warns_about_what_was_typed_in_the_builders_free_parts(form_app):
    form = posted_sig(form_app, LISINOPRIL_SIG | {"extra_instructions": "with 5 cc water"})
    assert form.errors == {}
    assert [w.code for w in form.warnings] == ["cc"]


def test_the_sig_form_offers_the_rules_lists_with_visible_labels(form_app):
    form = posted_sig(form_app, LISINOPRIL_SIG)
    frequencies = form.rendered["frequency"]
    assert '<label class="form-label" for="sig-frequency">How often</label>' in frequencies
    for frequency in FREQUENCIES.values():
        assert f">{frequency.phrase}</option>" in frequencies
    assert ">In the right eye</option>" in form.rendered["route"]
    assert ">units</option>" in form.rendered["dose_unit"]
    assert "teaspoon" not in form.rendered["dose_unit"]
    write_out = form.rendered["write_out"]
    assert 'type="checkbox"' in write_out
    assert 'for="sig-write_out">Write the directions out instead</label>' in write_out
    assert 'for="sig-directions">Directions (written out)' in form.rendered["directions"]


def test_typed_markup_stays_inert_in_the_rendered_form(form_app):
    payload = '"><script>alert(1)</script>'
    form = posted_sig(
        form_app, LISINOPRIL_SIG | {"extra_instructions": payload, "dose_amount": payload}
    )
    assert "<script>" not in form.rendered["extra_instructions"]
    assert "&lt;script&gt;" in form.rendered["extra_instructions"]
    assert "<script>" not in form.rendered["dose_amount"]


DETAILS = {"quantity": "30", "dispense_unit": "tablet", "refills": "2"}


def test_the_details_form_works_out_the_days_supply(form_app):
    form = posted_details(form_app, DETAILS, sig=_sig())
    assert form.valid, form.errors
    assert form.values() == {
        "quantity": Decimal(30),
        "dispense_unit": "tablet",
        "days_supply": 30,
        "refills": 2,
        "dispense_as_written": False,
        "pharmacist_note": "",
        "effective_date": TODAY,
        "diagnoses": [],
    }


def test_the_details_form_keeps_a_typed_days_supply_and_the_choices(form_app):
    form = posted_details(
        form_app,
        DETAILS
        | {
            "days_supply": "28",
            "dispense_as_written": "y",
            "pharmacist_note": "Blister pack, please",
            "effective_date": "2026-12-20",
            "diagnoses": "I10",
        },
        sig=_sig(),
        diagnosis_choices=[("I10", "Essential hypertension"), ("E11.9", "Type 2 diabetes")],
    )
    assert form.valid, form.errors
    values = form.values()
    assert values["days_supply"] == 28
    assert values["dispense_as_written"] is True
    assert values["pharmacist_note"] == "Blister pack, please"
    assert values["effective_date"] == date(2026, 12, 20)
    assert values["diagnoses"] == ["I10"]


def test_the_details_form_leaves_the_days_supply_blank_when_it_cannot_be_known(form_app):
    form = posted_details(
        form_app, DETAILS | {"dispense_unit": "mL", "quantity": "150"}, sig=_sig(unit="mL")
    )
    assert form.valid
    assert form.values()["days_supply"] is None


def test_the_details_form_refuses_refills_on_schedule_two_beside_the_field(form_app):
    form = posted_details(form_app, DETAILS | {"refills": "1"}, schedule=2)
    assert not form.valid
    assert form.errors == {"refills": ["A schedule II prescription cannot have refills: enter 0."]}
    assert 'id="rx-refills-error">A schedule II' in form.rendered["refills"]
    assert 'max="0"' in form.rendered["refills"]
    assert posted_details(form_app, DETAILS | {"refills": "0"}, schedule=2).valid


def test_the_details_form_shows_every_refusal_at_once(form_app):
    form = posted_details(
        form_app,
        {
            "quantity": "0",
            "dispense_unit": "",
            "refills": "",
            "days_supply": "400",
            "pharmacist_note": "x" * 211,
            "effective_date": "2026-12-05",
            "diagnoses": ["I10", "E11.9", "J45.909"],
        },
        diagnosis_choices=[("I10", "a"), ("E11.9", "b"), ("J45.909", "c")],
    )
    assert not form.valid
    assert form.errors == {
        "quantity": ["The quantity must be more than zero."],
        "dispense_unit": ["Choose the unit the quantity is in."],
        "refills": ["Enter the number of refills (0 for none)."],
        "days_supply": ["The days supply is 1 to 365 days."],
        "pharmacist_note": ["The note to the pharmacist is at most 210 characters (211 now)."],
        "effective_date": ["The effective date cannot be in the past."],
        "diagnoses": ["Choose at most 2 diagnoses."],
    }


def test_the_details_form_refuses_a_diagnosis_not_on_the_list(form_app):
    form = posted_details(
        form_app,
        DETAILS | {"diagnoses": "Z99.9"},
        diagnosis_choices=[("I10", "Essential hypertension")],
    )
    assert not form.valid
    assert list(form.errors) == ["diagnoses"]


def test_the_details_form_bounds_its_dates_in_the_page_and_on_the_server(form_app):
    form = posted_details(form_app, DETAILS | {"effective_date": "9999-12-31"})
    assert not form.valid
    assert list(form.errors) == ["effective_date"]
    html = form.rendered["effective_date"]
    assert 'min="2026-12-06"' in html
    assert 'max="2027-06-06"' in html
    schedule_two = posted_details(form_app, DETAILS | {"refills": "0"}, schedule=2)
    assert 'max="2027-03-06"' in schedule_two.rendered["effective_date"]
    late = posted_details(form_app, DETAILS | {"effective_date": "2027-06-07"})
    assert list(late.errors) == ["effective_date"]


def test_the_details_form_renders_visible_labels(form_app):
    form = posted_details(form_app, DETAILS)
    assert 'for="rx-pharmacist_note">Note to the pharmacist' in form.rendered["pharmacist_note"]
    assert 'maxlength="210"' in form.rendered["pharmacist_note"]
    assert "Dispense as written (no substitution)" in form.rendered["dispense_as_written"]
    assert ">Tablet</option>" in form.rendered["dispense_unit"]


def test_values_before_a_valid_post_is_a_programming_error(form_app):
    form = posted_details(form_app, DETAILS | {"quantity": ""})
    with pytest.raises(RuntimeError):
        form.values()

"""The search parameter values FHIR writes, read the same way by every resource type."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from portal.fhir.params import (
    Token,
    date_matches,
    parse_date_value,
    parse_reference,
    parse_token,
    refuse_modifier,
)
from portal.fhir.spec import Criterion, InvalidSearch

NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("value", "prefix", "start", "end"),
    [
        ("2024", "eq", datetime(2024, 1, 1), datetime(2025, 1, 1)),
        ("2024-02", "eq", datetime(2024, 2, 1), datetime(2024, 3, 1)),
        ("2024-12", "eq", datetime(2024, 12, 1), datetime(2025, 1, 1)),
        ("ge2024-02-29", "ge", datetime(2024, 2, 29), datetime(2024, 3, 1)),
        ("lt2024-03-05T10:00", "lt", datetime(2024, 3, 5, 10), datetime(2024, 3, 5, 10, 1)),
        (
            "ne2024-03-05T10:00:07",
            "ne",
            datetime(2024, 3, 5, 10, 0, 7),
            datetime(2024, 3, 5, 10, 0, 8),
        ),
    ],
)
def test_a_date_is_the_range_it_names(value, prefix, start, end):
    found = parse_date_value("date", value, UTC)
    assert found.prefix == prefix
    assert (found.start, found.end) == (start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))


def test_a_date_without_an_offset_is_the_clinics_day_and_an_offset_is_kept():
    day = parse_date_value("date", "2024-07-01", NEW_YORK)
    assert day.start == datetime(2024, 7, 1, 4, tzinfo=UTC)  # EDT midnight
    assert day.end == datetime(2024, 7, 2, 4, tzinfo=UTC)
    exact = parse_date_value("date", "gt2024-07-01T12:00:00+02:00", NEW_YORK)
    assert exact.start == datetime(2024, 7, 1, 10, tzinfo=UTC)
    zulu = parse_date_value("date", "2024-07-01T12:00:00.5Z", NEW_YORK)
    assert zulu.start == datetime(2024, 7, 1, 12, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2024-13",
        "2024-02-30",
        "24-01-01",
        "2024-01-01T25:00",
        "sa2024",  # a prefix FHIR has, this server does not
        "xx2024",
        "9999-01-01",  # beyond the app's bounds
        "1066",
        "2024" + "0" * 100,
        "2024-01-01T10:00+5",
    ],
)
def test_a_malformed_date_is_refused_naming_the_parameter(value):
    with pytest.raises(InvalidSearch) as refused:
        parse_date_value("onset-date", value)
    assert refused.value.parameter == "onset-date"


def test_prefixes_compare_a_stored_point_with_the_range():
    def matches(value, when):
        return date_matches(Criterion("date", None, [value]), when, UTC)

    noon = datetime(2024, 3, 5, 12, tzinfo=UTC)
    assert matches("2024-03-05", noon) and matches("eq2024-03", noon)
    assert not matches("ne2024-03-05", noon) and matches("ne2024-03-06", noon)
    assert matches("lt2024-03-06", noon) and not matches("lt2024-03-05", noon)
    assert matches("le2024-03-05", noon) and not matches("le2024-03-04", noon)
    assert matches("gt2024-03-04", noon) and not matches("gt2024-03-05", noon)
    assert matches("ge2024-03-05", noon) and not matches("ge2024-03-06", noon)
    assert not matches("2024", None)


def test_tokens():
    assert parse_token("code", "http://loinc.org|8867-4") == Token("http://loinc.org", "8867-4")
    assert parse_token("code", "8867-4") == Token(None, "8867-4")
    assert parse_token("code", "|active") == Token("", "active")
    assert parse_token("code", "http://loinc.org|") == Token("http://loinc.org", None)
    for bad in ("", "|", "a|b|c"):
        with pytest.raises(InvalidSearch):
            parse_token("code", bad)


def test_references():
    assert parse_reference("patient", "Patient/12", "Patient") == 12
    assert parse_reference("patient", "12", "Patient") == 12
    assert parse_reference("patient", "https://example.org/fhir/Patient/12", "Patient") == 12
    # An id no row can have matches nothing rather than failing.
    assert parse_reference("patient", "Patient/abc", "Patient") is None
    assert parse_reference("patient", "99999999999999", "Patient") is None
    with pytest.raises(InvalidSearch):
        parse_reference("patient", "Practitioner/3", "Patient")
    with pytest.raises(InvalidSearch):
        parse_reference("patient", " ", "Patient")


def test_an_unsupported_modifier_is_refused():
    refuse_modifier(Criterion("code", None, ["x"]))
    refuse_modifier(Criterion("code", "not", ["x"]), ("not",))
    with pytest.raises(InvalidSearch):
        refuse_modifier(Criterion("date", "exact", ["2024"]))

"""Dates and times from outside are bounded (portal/dates.py), like ids: a date far out of
range is refused (a message beside the field, or the query string ignored), never a 500.

The walk sends extreme dates to every page the portal serves, in every query argument a
view reads and every date field a form has, as each role; then the forms whose dates reach
the clinic's calendar arithmetic (booking, vitals) are posted with otherwise valid input.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from datetime import date
from pathlib import Path

import pytest
from flask_wtf import FlaskForm
from wtforms.fields.datetime import DateTimeField, TimeField

import portal
from portal import dates
from portal.dates import TOO_EARLY_MESSAGE, TOO_LATE_MESSAGE, parse_date, parse_instant
from tests.auth.helpers import field_error
from tests.support.chart import chart  # noqa: F401  (fixture)

# (dates, instants) far out of range, and just out of it, and malformed.
EXTREMES = [
    ("0001-01-01", "0001-01-01T00:00:00Z"),
    ("9999-12-31", "9999-12-31T23:59:59-12:00"),
    ("1899-12-31", "2201-01-01T00:00:00+00:00"),
    ("99999-01-01", "0001-01-01T00:00:00+14:00"),
]
INSTANT_ARGUMENTS = ("starts_at", "after")


def _form_classes() -> list[type[FlaskForm]]:
    classes = []
    for module in pkgutil.walk_packages(portal.__path__, "portal."):
        if not module.name.endswith(".forms"):
            continue
        loaded = importlib.import_module(module.name)
        classes += [
            cls
            for _, cls in inspect.getmembers(loaded, inspect.isclass)
            if issubclass(cls, FlaskForm) and cls.__module__ == loaded.__name__
        ]
    return classes


def _date_fields() -> dict[str, type]:
    """{field name: field class} of every date or date-time field of every form."""
    found = {}
    for cls in _form_classes():
        for name in dir(cls):
            unbound = getattr(cls, name, None)
            field_class = getattr(unbound, "field_class", None)
            # A time of day alone is bounded by its format (00:00 to 23:59).
            if (
                inspect.isclass(field_class)
                and issubclass(field_class, DateTimeField)
                and not issubclass(field_class, TimeField)
            ):
                found[f"{cls.__module__}.{cls.__name__}.{name}"] = field_class
    return found


def test_every_date_field_of_every_form_is_bounded():
    fields = _date_fields()
    assert len(fields) >= 15  # the walk really found the forms
    unbounded = [name for name, cls in fields.items() if not issubclass(cls, dates._Bounded)]
    assert unbounded == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-06", date(2026, 12, 6)),
        ("1900-01-01", date(1900, 1, 1)),
        ("2200-12-31", date(2200, 12, 31)),
        ("1899-12-31", None),
        ("2201-01-01", None),
        ("9999-12-31", None),
        ("0001-01-01", None),
        ("2026-02-30", None),
        ("", None),
        (None, None),
        ("2026-12-06" + " " * 1_000_000, None),
    ],
)
def test_parse_date_bounds(text, expected):
    assert parse_date(text) == expected


def test_parse_instant_is_utc_bounded_and_needs_an_offset():
    assert parse_instant("2026-12-06T14:00:00Z").isoformat() == "2026-12-06T14:00:00+00:00"
    assert parse_instant("2026-12-06T14:00:00+01:00").isoformat() == "2026-12-06T13:00:00+00:00"
    for text in ("2026-12-06T14:00:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00"):
        assert parse_instant(text) is None, text


def _route_args(rule, chart) -> dict:  # noqa: F811
    values = {"patient_id": chart.patients[0], "user_id": chart.drlee, "chart": "weight"}
    values |= {"type_id": chart.follow_up, "location_id": chart.main_street}
    args = {}
    for name in rule.arguments:
        choices = getattr(rule._converters[name], "items", None)  # <any(...)>: the first
        args[name] = values.get(name, sorted(choices)[0] if choices else 1)
    return args


def _query(day: str, instant: str) -> dict:
    names = {name.rsplit(".", 1)[1] for name in _date_fields()}
    names |= {"day", "start", "end", "dob"}
    query = {name: day for name in names}
    query |= {name: instant for name in INSTANT_ARGUMENTS}
    query |= {"after_provider": "1", "before": f"1:{instant}", "sort": "time"}
    return query


@pytest.mark.parametrize("role", ["admin", "prescriber", "front_desk", "nurse"])
def test_extreme_dates_in_every_query_string_are_never_a_500(app, signed_in, chart, role):  # noqa: F811
    client = signed_in(role)
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
        and rule.endpoint != "static"
        and not rule.endpoint.startswith("sandbox")
        and "token" not in rule.arguments
        and "sign-out" not in rule.rule
    ]
    assert len(rules) > 50
    failures = []
    for rule in rules:
        path = rule.build(_route_args(rule, chart), append_unknown=False)[1]
        for day, instant in EXTREMES:
            response = client.get(path, query_string=_query(day, instant))
            if response.status_code >= 500:
                failures.append(f"{path} ({day}, {instant}): {response.status_code}")
    assert failures == []


def test_the_audit_report_refuses_a_far_end_date_beside_the_field(app, signed_in):
    admin = signed_in("admin")
    response = admin.get("/admin/audit/", query_string={"end": "9999-12-31"})
    assert response.status_code == 422
    assert field_error(response, "end") == TOO_LATE_MESSAGE
    response = admin.get("/admin/audit/export.csv", query_string={"start": "0001-01-01"})
    assert response.status_code == 422
    assert TOO_EARLY_MESSAGE in response.get_data(as_text=True)
    assert admin.get("/admin/audit/", query_string={"end": "2200-12-31"}).status_code == 200


def test_a_booking_panel_for_a_far_start_is_the_usual_panel(app, signed_in, chart):  # noqa: F811
    desk = signed_in("front_desk")
    query = {
        "patient_id": chart.patients[0],
        "provider_id": chart.drlee,
        "location_id": chart.main_street,
    }
    for _, instant in EXTREMES:
        response = desk.get(
            "/schedule/appointments/new", query_string=query | {"starts_at": instant}
        )
        assert response.status_code == 200, instant


def _kitchen_sink(chart, day: str, instant: str) -> dict:  # noqa: F811
    """A post that would be valid for the forms that take dates, but for the date: so
    the date is what the form (and anything after it) has to cope with."""
    data = {name: day for name in {n.rsplit(".", 1)[1] for n in _date_fields()}}
    data |= {name: instant for name in INSTANT_ARGUMENTS}
    data |= {
        f"{prefix}-{name}": value for prefix in _form_prefixes() for name, value in data.items()
    }
    data |= {
        "taken_at": f"{day}T09:00",
        "vitals-taken_at": f"{day}T09:00",
        "vitals-weight": "70",
        "vitals-confirmed": "y",
        "starts_at": f"{day}T09:00",
        "ends_at": f"{day}T17:00",
        "patient_id": chart.patients[0],
        "provider_id": chart.drlee,
        "provider_ids": chart.drlee,
        "location_id": chart.main_street,
        "appointment_type_id": chart.follow_up,
        "type_id": chart.follow_up,
        "start_time": "09:00",
        "occurred_time": "09:00",
        "reason": "Check-up",
        "kind": "office",
        "weight": "70",
        "pulse": "70",
        "confirmed": "y",
        "name": "Amoxicillin",
        "description": "Hypertension",
        "given_name": "Ada",
        "family_name": "Bound",
        "sex_at_birth": "female",
    }
    return data


def _form_prefixes() -> set[str]:
    """The prefixes forms are given where they are made (``prefix="vitals"``)."""
    source = "".join(path.read_text() for path in Path(portal.__file__).parent.rglob("*.py"))
    return set(re.findall(r'prefix="([a-z_]+)"', source))


@pytest.mark.parametrize("role", ["admin", "prescriber", "front_desk", "nurse"])
def test_extreme_dates_posted_to_every_form_are_never_a_500(app, signed_in, chart, role):  # noqa: F811
    client = signed_in(role)
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods
        and not rule.endpoint.startswith("sandbox")
        and "webhook" not in rule.rule
        and "sign-out" not in rule.rule
    ]
    assert len(rules) > 50
    failures = []
    for rule in rules:
        path = rule.build(_route_args(rule, chart), append_unknown=False)[1]
        for day, instant in EXTREMES[:2]:
            response = client.post_form(path, _kitchen_sink(chart, day, instant))
            if response.status_code >= 500:
                failures.append(f"{path} ({day}): {response.status_code}")
    assert failures == []

"""Vital signs over real HTTP: entry in the clinic's units, refusals, confirmation, encounter
section, entered in error, charts, audit. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.charting.entered_in_error_checks import assert_asked_again
from tests.charting.vitals_helpers import (
    audit_events,
    form,
    make_encounter,
    make_patient,
    set_units,
    vital_sets,
)


@pytest.fixture
def adult(app) -> int:
    return make_patient(app, date(1980, 5, 17))


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


def _text(response) -> str:
    return response.get_data(as_text=True)


def test_vitals_typed_in_fahrenheit_and_pounds_are_stored_canonical_and_shown_back(
    app, nurse, adult
):
    response = nurse.post_form(
        f"/chart/patients/{adult}/vitals",
        form(
            systolic="128",
            diastolic="82",
            bp_position="sitting",
            heart_rate="72",
            respiratory_rate="16",
            temperature="98.6",
            spo2="98",
            weight="180",
            height="70",
            pain_score="2",
        ),
    )
    assert response.status_code == 303, _text(response)[:3000]
    (row,) = vital_sets(app, adult)
    assert row.temperature_cel == 37.0
    assert row.weight_kg == pytest.approx(81.647)
    assert row.height_cm == pytest.approx(177.8)
    assert row.bmi == 25.8
    assert row.systolic_mmhg == 128 and row.diastolic_mmhg == 82 and row.bp_position == "sitting"
    page = _text(nurse.get(f"/chart/patients/{adult}/vitals"))
    assert "98.6 °F" in page and "180.0 lb" in page and "70.0 in" in page
    assert "128/82 mmHg" in page and "Diastolic high" in page
    assert "25.8 kg/m²" in page


def test_the_form_shows_the_clinics_units_beside_the_fields(app, nurse, adult):
    page = _text(nurse.get(f"/chart/patients/{adult}/vitals"))
    assert 'id="vitals-temperature-unit">°F<' in page
    assert 'id="vitals-weight-unit">lb<' in page
    set_units(app, "Cel", "kg", "cm")
    page = _text(nurse.get(f"/chart/patients/{adult}/vitals"))
    assert 'id="vitals-temperature-unit">°C<' in page
    assert 'id="vitals-height-unit">cm<' in page


def test_metric_clinic_stores_what_was_typed(app, nurse, adult):
    set_units(app, "Cel", "kg", "cm")
    nurse.post_form(f"/chart/patients/{adult}/vitals", form(temperature="38.4", weight="70.25"))
    (row,) = vital_sets(app, adult)
    assert row.temperature_cel == 38.4 and row.weight_kg == 70.25
    page = _text(nurse.get(f"/chart/patients/{adult}/vitals"))
    assert "38.4 °C" in page and "Fever" in page and "70.25 kg" in page


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"systolic": "400", "diastolic": "80"}, "systolic", "Systolic must be between"),
        ({"weight": "0"}, "weight", "Weight must be between"),
        ({"systolic": "120", "diastolic": "130"}, "diastolic", "lower than systolic"),
        ({"spo2": "101"}, "spo2", "between 20 % and 100 %"),
        ({"temperature": "140"}, "temperature", "Temperature must be between"),
        ({"heart_rate": "-4"}, "heart_rate", "cannot be negative"),
        ({"heart_rate": "fast"}, "heart_rate", "Enter a number"),
        ({"weight": "7" * 10000}, "weight", "Enter a number"),
        ({"heart_rate": "72.5"}, "heart_rate", "whole number"),
    ],
)
def test_impossible_values_come_back_with_a_message_beside_the_field(
    app, nurse, adult, values, field, message
):
    response = nurse.post_form(f"/chart/patients/{adult}/vitals", form(**values))
    assert response.status_code == 422
    page = _text(response)
    error = re.search(rf'id="vitals-{field}-error">([^<]*)<', page)
    assert error and message in error.group(1), page[:200]
    for value in values.values():
        if len(value) < 100:
            assert f'value="{value}"' in page  # what was typed is kept
    assert vital_sets(app, adult) == []


def test_an_empty_form_is_refused(app, nurse, adult):
    response = nurse.post_form(f"/chart/patients/{adult}/vitals", form(systolic="", weight=""))
    assert response.status_code == 422
    assert "Enter at least one measurement." in _text(response)
    assert vital_sets(app, adult) == []


def test_time_cannot_be_in_the_future_or_before_birth(app, nurse, adult):
    future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = nurse.post_form(
        f"/chart/patients/{adult}/vitals", form(heart_rate="70", taken_at=future)
    )
    assert response.status_code == 422
    assert "cannot be in the future" in _text(response)
    response = nurse.post_form(
        f"/chart/patients/{adult}/vitals", form(heart_rate="70", taken_at="1979-01-01T10:00")
    )
    assert response.status_code == 422
    assert "before the patient&#39;s birth" in _text(response)
    assert vital_sets(app, adult) == []


def test_a_past_time_is_kept_in_the_clinics_zone(app, nurse, adult):
    nurse.post_form(
        f"/chart/patients/{adult}/vitals", form(heart_rate="70", taken_at="2024-07-01T09:30")
    )
    (row,) = vital_sets(app, adult)
    assert row.taken_at == datetime(2024, 7, 1, 13, 30, tzinfo=UTC)  # 09:30 in New York (EDT)


def test_implausible_values_are_saved_only_once_confirmed(app, nurse, adult):
    typed = form(heart_rate="230", temperature="99.1")
    response = nurse.post_form(f"/chart/patients/{adult}/vitals", typed)
    assert response.status_code == 422
    page = _text(response)
    assert "Heart rate is unusual" in page
    assert "These values are correct" in page
    assert 'value="230"' in page
    assert vital_sets(app, adult) == []
    response = nurse.post_form(
        f"/chart/patients/{adult}/vitals", {**typed, "vitals-confirmed": "y"}
    )
    assert response.status_code == 303
    (row,) = vital_sets(app, adult)
    assert row.heart_rate_per_min == 230
    (event,) = [e for e in audit_events(app, "vital signs") if e.action == "vitals.record"]
    assert "unusual values confirmed" in event.detail


def test_head_circumference_is_asked_for_young_children_only(app, nurse, adult):
    toddler = make_patient(app, date.today() - timedelta(days=400), given="Baby")
    assert "Head circumference" in _text(nurse.get(f"/chart/patients/{toddler}/vitals"))
    assert "Head circumference</label>" not in _text(nurse.get(f"/chart/patients/{adult}/vitals"))
    response = nurse.post_form(
        f"/chart/patients/{toddler}/vitals",
        form(head_circumference="18.5", heart_rate="125", weight="22"),
    )
    assert response.status_code == 303, _text(response)[:2000]
    (row,) = vital_sets(app, toddler)
    assert row.head_circumference_cm == pytest.approx(46.99)
    page = _text(nurse.get(f"/chart/patients/{toddler}/vitals"))
    assert "18.5 in" in page
    # 125/min is normal at one year, fast for an adult.
    assert "125 /min</td>" in page.replace("\n", "")


def test_encounter_section_records_with_htmx_and_shows_the_visits_sets(app, nurse, adult):
    encounter = make_encounter(app, adult)
    response = nurse.htmx_post(
        f"/chart/encounters/{encounter}/vitals", form(systolic="150", diastolic="95")
    )
    assert response.status_code == 200
    section = _text(response)
    assert section.lstrip().startswith("<section") and 'id="encounter-vitals"' in section
    assert "150/95 mmHg" in section and "Systolic high" in section
    (row,) = vital_sets(app, adult)
    assert row.encounter_id == encounter
    refused = nurse.htmx_post(f"/chart/encounters/{encounter}/vitals", form(systolic="400"))
    assert refused.status_code == 422
    assert 'id="vitals-systolic-error"' in _text(refused)
    assert "150/95 mmHg" in _text(refused)  # the visit's sets stay listed


def test_encounter_context_for_the_encounter_page(app, nurse, adult):
    from portal.charting.models import Encounter
    from portal.charting.vitals.views import encounter_vitals_context
    from portal.extensions import db

    encounter_id = make_encounter(app, adult)
    nurse.htmx_post(f"/chart/encounters/{encounter_id}/vitals", form(heart_rate="64"))
    nurse.post_form(f"/chart/patients/{adult}/vitals", form(heart_rate="99"))  # not this visit
    with app.test_request_context():
        context = encounter_vitals_context(db.session.get(Encounter, encounter_id))
        assert [s.values["heart_rate"].text for s in context["vitals_sets"]] == ["64 /min"]
        assert context["vitals_units"]["temperature"] == "°F"


CONFIRMED = {"reason": "Typed into the wrong chart", "confirm": "y"}


def test_entered_in_error_from_the_encounter_section_asks_then_returns_to_the_visit(
    app, nurse, adult
):
    encounter = make_encounter(app, adult)
    nurse.htmx_post(f"/chart/encounters/{encounter}/vitals", form(heart_rate="64"))
    (row,) = vital_sets(app, adult)
    confirm_url = f"/chart/patients/{adult}/vitals/{row.id}/entered-in-error"
    section = _text(nurse.get(f"/chart/encounters/{encounter}"))
    assert f'href="{confirm_url}"' in section  # a link to the question, not a one-click form
    response = nurse.post_form(confirm_url, CONFIRMED)
    assert response.status_code == 303
    assert response.location.endswith(f"/chart/encounters/{encounter}#encounter-vitals")
    assert vital_sets(app, adult)[0].entered_in_error
    page = _text(nurse.get(f"/chart/encounters/{encounter}"))
    assert "Entered in error" in page and "Typed into the wrong chart" in page


def test_unknown_encounter_is_404(nurse):
    assert (
        nurse.htmx_post("/chart/encounters/999999/vitals", form(heart_rate="64")).status_code == 404
    )


def test_entered_in_error_keeps_the_set_struck_out_with_its_reason_and_is_audited(
    app, nurse, adult
):
    nurse.post_form(f"/chart/patients/{adult}/vitals", form(heart_rate="64"))
    (row,) = vital_sets(app, adult)
    response = nurse.post_form(
        f"/chart/patients/{adult}/vitals/{row.id}/entered-in-error", CONFIRMED
    )
    assert response.status_code == 303
    assert response.location.endswith(f"/chart/patients/{adult}/vitals")
    (row,) = vital_sets(app, adult)
    assert row.entered_in_error and row.entered_in_error_reason == "Typed into the wrong chart"
    page = _text(nurse.get(f"/chart/patients/{adult}/vitals"))
    assert "Entered in error" in page and "text-decoration-line-through" in page
    assert "Typed into the wrong chart" in page
    events = [e for e in audit_events(app, "vital signs") if e.object_id == str(row.id)]
    assert [e.action for e in events] == ["vitals.record", "vitals.entered_in_error"]
    assert "wrong chart" not in (events[1].detail or "")  # the trail holds no free text


def test_the_confirmation_page_shows_the_set_and_asks_with_labelled_fields(app, nurse, adult):
    nurse.post_form(f"/chart/patients/{adult}/vitals", form(heart_rate="64", spo2="97"))
    (row,) = vital_sets(app, adult)
    response = nurse.get(f"/chart/patients/{adult}/vitals/{row.id}/entered-in-error")
    assert response.status_code == 200
    page = _text(response)
    assert "64 /min" in page and "97 %" in page
    assert re.search(r'<label class="form-label" for="reason">Why was this set entered in', page)
    assert re.search(
        r'<label class="form-check-label" for="confirm">I confirm this set was entered in error',
        page,
    )
    assert 'type="checkbox"' in page and 'type="submit"' in page
    assert "<script" not in page.split("<main", 1)[-1].split("</main>", 1)[0]  # no script needed
    assert f'href="/chart/patients/{adult}/vitals"' in page  # Cancel goes back
    assert not vital_sets(app, adult)[0].entered_in_error  # asking changes nothing
    (viewed,) = [e for e in audit_events(app, "vital signs") if e.object_id == str(row.id)][1:]
    assert viewed.action == "vitals.view"


@pytest.mark.parametrize(
    ("sent", "messages"),
    [
        ({}, ["Say why this set was entered in error.", "Tick the box to confirm."]),
        ({"reason": "Duplicate of the 9:00 set"}, ["Tick the box to confirm."]),
        ({"confirm": "y"}, ["Say why this set was entered in error."]),
        ({"reason": "   ", "confirm": "y"}, ["Say why this set was entered in error."]),
        ({"reason": "x" * 301, "confirm": "y"}, ["300 characters or fewer"]),
    ],
)
def test_without_the_reason_and_the_ticked_box_nothing_changes(app, nurse, adult, sent, messages):
    nurse.post_form(f"/chart/patients/{adult}/vitals", form(heart_rate="64"))
    (row,) = vital_sets(app, adult)
    response = nurse.post_form(f"/chart/patients/{adult}/vitals/{row.id}/entered-in-error", sent)
    assert_asked_again(response, sent, messages)
    (row,) = vital_sets(app, adult)
    assert not row.entered_in_error and row.entered_in_error_reason is None
    actions = [e.action for e in audit_events(app, "vital signs")]
    assert "vitals.entered_in_error" not in actions


def test_a_set_already_marked_says_so_and_stays_as_it_was(app, nurse, adult):
    nurse.post_form(f"/chart/patients/{adult}/vitals", form(heart_rate="64"))
    (row,) = vital_sets(app, adult)
    url = f"/chart/patients/{adult}/vitals/{row.id}/entered-in-error"
    nurse.post_form(url, CONFIRMED)
    page = _text(nurse.get(url))
    assert "already marked entered in error: Typed into the wrong chart" in page
    assert "I confirm this set" not in page
    again = nurse.post_form(url, {"reason": "Another reason", "confirm": "y"})
    assert again.status_code == 303
    assert vital_sets(app, adult)[0].entered_in_error_reason == "Typed into the wrong chart"


def test_a_set_of_another_patient_is_404(app, nurse, adult):
    other = make_patient(app, date(1990, 1, 1), given="Other")
    nurse.post_form(f"/chart/patients/{other}/vitals", form(heart_rate="64"))
    (row,) = vital_sets(app, other)
    url = f"/chart/patients/{adult}/vitals/{row.id}/entered-in-error"
    assert nurse.get(url).status_code == 404
    assert nurse.post_form(url).status_code == 404
    assert nurse.post_form(url, CONFIRMED).status_code == 404
    assert not vital_sets(app, other)[0].entered_in_error


def test_views_and_changes_are_audited_without_values(app, nurse, adult):
    nurse.get(f"/chart/patients/{adult}/vitals")
    nurse.post_form(f"/chart/patients/{adult}/vitals", form(weight="180", temperature="98.6"))
    nurse.get(f"/chart/patients/{adult}/vitals/weight.svg")
    events = audit_events(app, "vital signs")
    assert [e.action for e in events] == ["vitals.view", "vitals.record", "vitals.chart.view"]
    assert all(e.patient_id == adult for e in events)
    assert all("180" not in (e.detail or "") and "98" not in (e.detail or "") for e in events)


def test_sets_are_listed_newest_first_and_paginated(app, nurse, adult):
    from portal.charting.models import VitalSigns
    from portal.extensions import db

    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    with app.app_context():
        for day in range(30):
            db.session.add(
                VitalSigns(
                    patient_id=adult,
                    taken_at=start + timedelta(days=day),
                    heart_rate_per_min=60 + day,
                )
            )
        db.session.commit()
    first = _text(nurse.get(f"/chart/patients/{adult}/vitals"))
    assert first.index("89 /min") < first.index("88 /min")
    assert "65 /min" in first and "64 /min" not in first  # 25 a page
    assert "Older sets" in first
    second = _text(nurse.get(f"/chart/patients/{adult}/vitals?page=2"))
    assert "64 /min" in second and "60 /min" in second and "Newer sets" in second
    # A page number no list reaches, or not a number at all: a page, never a 500.
    for page in ("99999999999999999999999", "-3", "two"):
        response = nurse.get(f"/chart/patients/{adult}/vitals?page={page}")
        assert response.status_code == 200, page


def test_trend_chart_is_an_svg_in_clinic_units_without_scripts(app, nurse, adult):
    for weight in ("180", "182.4"):
        nurse.post_form(f"/chart/patients/{adult}/vitals", form(weight=weight))
    response = nurse.get(f"/chart/patients/{adult}/vitals/weight.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    svg = _text(response)
    assert svg.startswith("<svg") and "182.4" in svg and "Weight (lb)" in svg
    assert "<script" not in svg and "cdn" not in svg.lower()
    page = _text(nurse.get(f"/chart/patients/{adult}/vitals"))
    assert f"/chart/patients/{adult}/vitals/weight.svg?window=2y" in page
    assert "/vitals/bp.svg" not in page  # no blood pressure yet: no empty chart


def test_blood_pressure_chart_draws_both_values_and_normal_bands(app, nurse, adult):
    nurse.post_form(f"/chart/patients/{adult}/vitals", form(systolic="141", diastolic="91"))
    nurse.post_form(f"/chart/patients/{adult}/vitals", form(systolic="122", diastolic="78"))
    svg = _text(nurse.get(f"/chart/patients/{adult}/vitals/bp.svg?window=all"))
    assert "141" in svg and "91" in svg
    # Two shaded bands (filled series) and two lines (unfilled).
    assert svg.count('class="line reactive"') == 2
    assert svg.count('class="line reactive nofill"') == 2


def _date_axis_labels(svg: str) -> list[str]:
    axis = re.search(r'<g class="axis x[^"]*">(.*?)<g class="series', svg, re.S).group(1)
    return re.findall(r"<text[^>]*>([^<]+)</text>", axis)


def test_values_of_a_single_day_are_labelled_with_times_not_one_date_repeated(nurse, adult):
    # Two readings of one day (a single reading is drawn between the days around it:
    # tests/charting/test_vitals_charts.py).
    day = (date.today() - timedelta(days=1)).isoformat()
    for at, temperature in (("08:10", "100.4"), ("11:40", "99.1")):
        saved = nurse.post_form(
            f"/chart/patients/{adult}/vitals",
            form(temperature=temperature, taken_at=f"{day}T{at}"),
        )
        assert saved.status_code == 303
    labels = _date_axis_labels(_text(nurse.get(f"/chart/patients/{adult}/vitals/temperature.svg")))
    assert len(labels) > 1
    assert len(set(labels)) == len(labels), labels
    assert all(re.fullmatch(r"\d\d \w{3} \d{4} \d\d:\d\d", label) for label in labels), labels


def test_values_weeks_apart_are_labelled_with_dates(nurse, adult):
    for days_ago, weight in ((60, "180"), (4, "176")):
        taken_at = (date.today() - timedelta(days=days_ago)).isoformat() + "T09:00"
        saved = nurse.post_form(
            f"/chart/patients/{adult}/vitals", form(weight=weight, taken_at=taken_at)
        )
        assert saved.status_code == 303
    labels = _date_axis_labels(
        _text(nurse.get(f"/chart/patients/{adult}/vitals/weight.svg?window=all"))
    )
    assert labels and all(re.fullmatch(r"\d\d \w{3} \d{4}", label) for label in labels), labels


def test_long_histories_are_drawn_with_a_bounded_number_of_points(app, nurse, adult):
    from portal.charting.models import VitalSigns
    from portal.charting.vitals import charts as vitals_charts
    from portal.extensions import db

    start = datetime.now(UTC) - timedelta(days=600)
    with app.app_context():
        db.session.add_all(
            VitalSigns(
                patient_id=adult,
                taken_at=start + timedelta(hours=2 * n),
                heart_rate_per_min=60 + n % 20,
            )
            for n in range(1000)
        )
        db.session.commit()
    with app.test_request_context():
        from portal.actors import Actor
        from portal.auth.models import User

        user = db.session.scalars(db.select(User).filter_by(username="nurse")).one()
        chart = vitals_charts.trend_chart(
            Actor.for_user(user, "127.0.0.1"), adult, "heart-rate", "all"
        )
    assert chart.count == 1000 and chart.drawn == vitals_charts.MAX_POINTS == 120


def test_unknown_chart_is_404(nurse, adult):
    assert nurse.get(f"/chart/patients/{adult}/vitals/cholesterol.svg").status_code == 404


def test_latest_vitals_for_the_chart_summary(app, nurse, adult):
    from portal.charting.vitals.services import latest_vitals_context

    nurse.post_form(
        f"/chart/patients/{adult}/vitals",
        form(systolic="118", diastolic="76", weight="180", temperature="100.9"),
    )
    nurse.post_form(f"/chart/patients/{adult}/vitals", form(weight="178"))
    with app.test_request_context():
        context = latest_vitals_context(adult)
        shown = {item.name: item.value for item in context["latest_vitals"]}
        assert shown["weight"].text == "178.0 lb"
        assert shown["systolic"].text == "118/76 mmHg" and shown["systolic"].flag is None
        assert shown["temperature"].flag.text == "Fever"
        from flask import render_template

        html = render_template("charting/vitals/_latest_vitals.html", **context)
    assert f"/chart/patients/{adult}/vitals/weight/sparkline.svg" in html
    sparkline = nurse.get(f"/chart/patients/{adult}/vitals/weight/sparkline.svg")
    assert sparkline.status_code == 200 and "<script" not in _text(sparkline)
    assert "<circle" not in _text(sparkline), "two weights draw a line, no dots"
    # One temperature alone draws no line: it shows as a dot, not a blank trend.
    single = nurse.get(f"/chart/patients/{adult}/vitals/temperature/sparkline.svg")
    assert single.status_code == 200 and "<circle" in _text(single)


def test_admin_sets_the_clinic_units_and_the_change_is_audited(app, signed_in, adult):
    admin = signed_in("admin")
    page = _text(admin.get("/admin/clinic"))
    assert "Units for vital signs" in page
    response = admin.post_form(
        "/admin/clinic",
        {
            "name": "Riverside Family Practice",
            "address": "100 Main Street",
            "phone": "+1 413-555-0100",
            "time_zone": "America/New_York",
            "temperature_unit": "Cel",
            "weight_unit": "kg",
            "length_unit": "cm",
        },
    )
    assert response.status_code == 302
    (event,) = [e for e in audit_events(app, "clinic settings") if e.action == "clinic.update"]
    assert event.detail == "changed: length_unit, temperature_unit, weight_unit"
    nurse = signed_in("nurse")
    assert 'id="vitals-weight-unit">kg<' in _text(nurse.get(f"/chart/patients/{adult}/vitals"))
    bad = admin.post_form(
        "/admin/clinic",
        {"name": "Riverside", "time_zone": "America/New_York", "temperature_unit": "K"},
    )
    assert bad.status_code == 422


def test_front_desk_and_admin_cannot_see_vitals(signed_in, adult):
    assert signed_in("front_desk").get(f"/chart/patients/{adult}/vitals").status_code == 403
    assert signed_in("admin").get(f"/chart/patients/{adult}/vitals/weight.svg").status_code == 403

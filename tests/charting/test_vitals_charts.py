"""Trend charts' axes (issue 14, section 4): a whole measure gets whole, distinct value
labels (a pain score's axis read "3, 3, 3, 2, 2"), and a single reading is one dot in the
middle of a three-day window labelled by date (it spanned an odd window of hours)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ElementTree
from datetime import date

import pytest

from portal.charting.vitals.charts import value_ticks
from tests.charting.vitals_helpers import form, make_patient

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


def _record(nurse, patient_id: int, taken_at: str, **values) -> None:
    response = nurse.post_form(
        f"/chart/patients/{patient_id}/vitals", form(taken_at=taken_at, **values)
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]


def _chart(nurse, patient_id: int, slug: str) -> ElementTree.Element:
    response = nurse.get(f"/chart/patients/{patient_id}/vitals/{slug}.svg?window=all")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    return ElementTree.fromstring(response.data)  # noqa: S314 (our own server's SVG)


def _axis_labels(svg: ElementTree.Element, axis: str) -> list[ElementTree.Element]:
    """The label texts of pygal's ``axis x`` or ``axis y`` group, in drawing order."""
    for group in svg.iter(f"{SVG}g"):
        if group.get("class", "").split()[:2] == ["axis", axis]:
            return list(group.iter(f"{SVG}text"))
    raise AssertionError(f"no {axis} axis in the chart")


def _dots(svg: ElementTree.Element) -> list[ElementTree.Element]:
    return [c for c in svg.iter(f"{SVG}circle") if "dot" in c.get("class", "").split()]


def test_a_pain_score_axis_has_whole_distinct_labels(app, nurse):
    patient = make_patient(app, date(1980, 5, 17))
    for month, pain in enumerate([3, 3, 3, 2, 2], start=1):
        _record(nurse, patient, f"2026-{month:02d}-10T09:30", pain_score=str(pain))

    labels = [text.text for text in _axis_labels(_chart(nurse, patient, "pain"), "y")]

    assert len(labels) >= 2
    assert len(set(labels)) == len(labels), labels  # each label once
    assert all(label.isdigit() for label in labels), labels  # whole numbers
    assert {"2", "3"} <= set(labels)
    steps = {int(b) - int(a) for a, b in itertools.pairwise(labels)}
    assert len(steps) == 1  # evenly spaced


def test_a_blood_pressure_axis_steps_by_round_whole_numbers(app, nurse):
    patient = make_patient(app, date(1980, 5, 17))
    for month, (systolic, diastolic) in enumerate([(128, 82), (141, 90), (119, 77)], start=1):
        _record(
            nurse,
            patient,
            f"2026-{month:02d}-10T09:30",
            systolic=str(systolic),
            diastolic=str(diastolic),
        )
    labels = [text.text for text in _axis_labels(_chart(nurse, patient, "bp"), "y")]
    assert len(set(labels)) == len(labels), labels
    assert all(label.isdigit() for label in labels), labels
    step = int(labels[1]) - int(labels[0])
    assert step in (1, 2, 5, 10, 20, 50)
    assert all(int(label) % step == 0 for label in labels)


def test_one_reading_is_one_dot_centred_between_the_days_around_it(app, nurse):
    patient = make_patient(app, date(1980, 5, 17))
    _record(nurse, patient, "2026-11-10T09:30", pain_score="4", weight="150")

    for slug in ("pain", "weight"):
        svg = _chart(nurse, patient, slug)
        [dot] = _dots(svg)
        days = _axis_labels(svg, "x")
        assert [text.text for text in days] == ["09 Nov 2026", "10 Nov 2026", "11 Nov 2026"]
        before, of_the_day, after = (float(text.get("x")) for text in days)
        assert float(dot.get("cx")) == pytest.approx(of_the_day, abs=0.5)
        assert of_the_day - before == pytest.approx(after - of_the_day, abs=0.5)
        values = [text.text for text in _axis_labels(svg, "y")]
        assert len(set(values)) == len(values), values


def test_value_ticks_never_repeat_at_the_shown_precision():
    assert value_ticks(1, 4, 0) == [1, 2, 3, 4]
    assert value_ticks(97.1, 100.3, 1) == [97.0, 97.5, 98.0, 98.5, 99.0, 99.5, 100.0, 100.5]
    assert value_ticks(58, 182, 0) == [40, 60, 80, 100, 120, 140, 160, 180, 200]
    for low, high, decimals in ((1.5, 3.5, 0), (36.4, 36.9, 1), (0, 0, 0), (70.2, 70.2, 2)):
        ticks = value_ticks(low, high, decimals)
        shown = [f"{tick:.{decimals}f}" for tick in ticks]
        assert len(set(shown)) == len(shown) >= 2
        assert ticks[0] <= low and ticks[-1] >= high

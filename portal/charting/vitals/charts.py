"""Trend charts of vital signs: server-rendered SVG (pygal), readable without JavaScript.

Each chart is an image (``<img src=...svg>``): the page's CSP never meets the chart's own
style sheet, and pygal's tooltip script (from a CDN) is switched off (``js=[]``) and its inline
config script removed, so the SVG holds nothing that runs.

The normal range is a shaded band: a filled series traced round the band's rectangle, drawn
before the values (pygal has no band of its own).

A page that shows charts (the chart summary's sparklines, the vitals page's trends) is
audited once, as a page; its images carry a ticket (``image_ticket``: the user's and the
patient's ids, signed with the app's secret key, good for ``IMAGE_TICKET_SECONDS``) that says
"this user was just shown this patient's page, and that view is on the trail", so each image
is not one more event. An image asked for without a valid ticket (a bookmarked link, another
user's or patient's ticket, an old one) is audited on its own, as before.

Pygal is slow per point: 5,000 points take 1.2 s, and each dot (with its tooltip text) about
0.1 ms. So a chart draws at most ``MAX_POINTS`` (a longer series is averaged over equal runs
of consecutive values; the page says so), and long lines go without dots. Measured with
5,000 sets on a loaded 2-core machine: blood-pressure chart p95 about 50-75 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import pygal
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pygal.etree import etree
from pygal.style import Style
from sqlalchemy import func, select

from portal.audit import services as audit
from portal.charting.models import VitalSigns
from portal.charting.vitals.services import (
    CATEGORY,
    MEASURES_BY_NAME,
    age_at,
    clinic_units,
    normal_ranges,
)
from portal.clinic.clock import clinic_zone
from portal.extensions import db
from portal.patients.services import get_patient_for
from portal.terminology.ucum import UNIT_SYMBOLS, from_canonical
from portal.timeutil import utcnow
from portal.transaction import use_case

MAX_POINTS = 120
# Above this many points a line is drawn without dots (each dot costs pygal ~0.1 ms).
DOTS_UP_TO = 60
SPARKLINE_POINTS = 20
# Period selector: name -> (label, days back; None = everything).
WINDOWS = {
    "1y": ("Last year", 365),
    "2y": ("Last 2 years", 730),
    "5y": ("Last 5 years", 1826),
    "all": ("All time", None),
}
DEFAULT_WINDOW = "2y"
# Values closer together than this get times on the date axis, not dates alone.
SHORT_SPAN = timedelta(days=2)
# A single reading (or readings all at one moment) is drawn in the middle of this much time
# either side, the axis labelled with the days before, of and after it.
SINGLE_READING_SIDE = timedelta(days=1)
# At most this many steps between the value axis's labels.
MAX_VALUE_STEPS = 8

# How long a page's ticket covers its images: enough for a slow page to load them all.
IMAGE_TICKET_SECONDS = 300
IMAGE_TICKET_SALT = "portal.charting.vitals.images-of-an-audited-page"

BAND = "#5fb870"
BACKGROUND = "#ffffff"
LINES = ("#1f4e9c", "#b3361c")


@dataclass(frozen=True)
class Chart:
    """One trend chart: its title, the fields drawn (one line each), and the unit quantity."""

    slug: str
    title: str
    fields: tuple[str, ...]


CHARTS = {
    chart.slug: chart
    for chart in (
        Chart("bp", "Blood pressure", ("systolic", "diastolic")),
        Chart("heart-rate", "Heart rate", ("heart_rate",)),
        Chart("respiratory-rate", "Respiratory rate", ("respiratory_rate",)),
        Chart("temperature", "Temperature", ("temperature",)),
        Chart("spo2", "SpO₂", ("spo2",)),
        Chart("weight", "Weight", ("weight",)),
        Chart("height", "Height", ("height",)),
        Chart("bmi", "BMI", ("bmi",)),
        Chart("pain", "Pain score", ("pain_score",)),
        Chart("head-circumference", "Head circumference", ("head_circumference",)),
    )
}


def _column(name: str):
    return VitalSigns.bmi if name == "bmi" else getattr(VitalSigns, MEASURES_BY_NAME[name].column)


def _unit(name: str, units: dict[str, str]) -> str:
    if name == "bmi":
        return "kg/m2"
    measure = MEASURES_BY_NAME[name]
    return units[measure.quantity] if measure.quantity else measure.unit


def _shown(name: str, value: float, units: dict[str, str]) -> float:
    measure = MEASURES_BY_NAME.get(name)
    return from_canonical(value, units[measure.quantity]) if measure and measure.quantity else value


def _average_runs(rows: list, count: int) -> list:
    """At most ``count`` points: each the mean time and values of a run of consecutive rows."""
    if len(rows) <= count:
        return rows
    size = len(rows) / count
    points = []
    for index in range(count):
        run = rows[int(index * size) : int((index + 1) * size)]
        start = run[0][0]
        middle = start + sum(((row[0] - start) for row in run), timedelta()) / len(run)
        values = [sum(row[i] for row in run) / len(run) for i in range(1, len(run[0]))]
        points.append((middle, *values))
    return points


def value_ticks(low: float, high: float, decimals: int) -> list[float]:
    """The value axis's labels: round steps (1, 2 or 5 times a power of ten, never finer
    than the unit's last shown decimal) from below ``low`` to above ``high``, at most
    ``MAX_VALUE_STEPS`` steps.

    Left to itself pygal steps by 0.5 for a pain score, and labels shown without decimals
    read "3, 3, 3, 2, 2": a step that is a multiple of the shown precision makes every label
    distinct, and whole measures get whole numbers.
    """
    if high < low:
        low, high = high, low

    def steps(step: float) -> int:
        return math.ceil(high / step - 1e-9) - math.floor(low / step + 1e-9)

    step = next(
        step
        for step in (
            factor * 10.0**exponent for exponent in range(-decimals, 9) for factor in (1, 2, 5)
        )
        if steps(step) <= MAX_VALUE_STEPS
    )
    first = math.floor(low / step + 1e-9)
    last = max(math.ceil(high / step - 1e-9), first + 1)
    return [round(index * step, decimals) for index in range(first, last + 1)]


def _image_tickets() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=IMAGE_TICKET_SALT)


def image_ticket(actor, patient_id: int) -> str:
    """The ticket the chart images of a page just audited carry in their address: ids only
    (no patient data), signed and dated."""
    return _image_tickets().dumps([actor.id, patient_id])


def covered_by_page(actor, patient_id: int, token: str | None) -> bool:
    """Whether ``token`` is a ticket, still fresh, issued to this user with a page of this
    patient: the image is then covered by that page's audit event."""
    if not token:
        return False
    try:
        issued_to = _image_tickets().loads(token, max_age=IMAGE_TICKET_SECONDS)
    except BadSignature:  # forged, altered or expired (SignatureExpired is one)
        return False
    return issued_to == [actor.id, patient_id]


def _without_scripts(chart) -> bytes:
    """The chart's SVG minus pygal's inline config script (nothing in it needs to run)."""
    tree = chart.render_tree()
    for parent in tree.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.endswith("script"):
                parent.remove(child)
    return etree.tostring(tree)


@dataclass
class TrendChart:
    """A drawn trend chart: the SVG, and how many values it covers and draws."""

    svg: bytes
    count: int  # values in the window
    drawn: int  # points drawn (fewer when averaged)


def trend_chart(
    actor,
    patient_id: int,
    slug: str,
    window: str = DEFAULT_WINDOW,
    *,
    covered: bool = False,
) -> TrendChart:
    """The SVG trend of one vital (both blood pressures on one chart), audited as a view
    unless ``covered`` by the audited page it is shown on (``covered_by_page``).

    Only the chart's columns are read, over the chosen window, oldest first.
    """
    chart = CHARTS[slug]
    days = WINDOWS[window][1]
    columns = [_column(name) for name in chart.fields]
    with use_case():
        patient = get_patient_for(actor, patient_id)
        query = (
            select(VitalSigns.taken_at, *columns)
            .where(VitalSigns.patient_id == patient.id, VitalSigns.entered_in_error.is_(False))
            .where(*(column.is_not(None) for column in columns))
            .order_by(VitalSigns.taken_at)
        )
        if days is not None:
            query = query.where(VitalSigns.taken_at >= utcnow() - timedelta(days=days))
        rows = [tuple(row) for row in db.session.execute(query)]
        age = age_at(patient.birth_date, rows[-1][0] if rows else utcnow())
        if not covered:
            audit.record(
                actor,
                "vitals.chart.view",
                patient=patient,
                category=CATEGORY,
                detail=f"{slug} {window}",
            )
    points = _average_runs(rows, MAX_POINTS)
    units = clinic_units()
    return TrendChart(_render(chart, points, units, age), len(rows), len(points))


def _render(chart: Chart, points: list, units: dict[str, str], age: int) -> bytes:
    unit = _unit(chart.fields[0], units)
    symbol, decimals = UNIT_SYMBOLS[unit]
    zone = clinic_zone()
    # Naive clinic-local times: pygal's date axis then labels them as the clinic reads them.
    times = [point[0].astimezone(zone).replace(tzinfo=None) for point in points]
    series = [
        (name, [_shown(name, point[i + 1], units) for point in points])
        for i, name in enumerate(chart.fields)
    ]
    bands = [
        (
            _shown(name, normal_ranges(age)[name][0], units),
            _shown(name, normal_ranges(age)[name][1], units),
        )
        for name in chart.fields
        if name in normal_ranges(age)
    ]
    title = chart.title if unit == "{score}" else f"{chart.title} ({symbol})"
    return draw_trend(title, times, series, bands, decimals)


def draw_trend(
    title: str,
    times: list,
    series: list[tuple[str, list[float]]],
    bands: list[tuple[float, float]],
    decimals: int,
) -> bytes:
    """A trend chart's SVG: lines of values at clinic-local (naive) ``times``, over shaded
    normal-range ``bands``, labels with ``decimals`` places. Shared with the lab results'
    trend per analyte (portal/labs/results), so both charts read the same way."""
    # Values of one or two days (sets taken during a visit): the axis spans hours, so
    # label it with times; by date alone every label would read the same day. A single
    # reading is a dot in the middle of three days, labelled by date.
    single = bool(times) and times[0] == times[-1]
    short = bool(times) and not single and times[-1] - times[0] < SHORT_SPAN
    label_format = "%d %b %Y %H:%M" if short else "%d %b %Y"
    values = [value for _, line in series for value in line] + [v for band in bands for v in band]
    low, high = (min(values), max(values)) if values else (0, 1)
    margin = max((high - low) * 0.1, 1)
    # No vital is below zero: a value axis from -2 would be noise.
    ticks = value_ticks(max(low - margin, 0) if low >= 0 else low - margin, high + margin, decimals)
    x_options = {}
    if single:
        moment = times[0]
        x_options["x_labels"] = [
            moment - SINGLE_READING_SIDE,
            moment,
            moment + SINGLE_READING_SIDE,
        ]
    colours = [BAND for _ in bands] + list(LINES)
    graph = pygal.DateTimeLine(
        js=[],
        style=Style(
            colors=tuple(colours),
            background=BACKGROUND,
            plot_background=BACKGROUND,
            opacity=".4",
            opacity_hover=".4",
            font_family="system-ui, sans-serif",
        ),
        width=720,
        height=280,
        title=title,
        show_legend=False,
        range=(ticks[0], ticks[-1]),
        # (pygal cannot place labels on a chart without data: it says so instead)
        y_labels=ticks if times else None,
        x_value_formatter=lambda moment: moment.strftime(label_format),
        value_formatter=lambda value: f"{value:.{decimals}f}",
        x_label_rotation=20,
        dots_size=2.5,
        show_dots=len(times) <= DOTS_UP_TO,
        disable_xml_declaration=True,
        no_data_text="No values in this period",
        truncate_label=-1,
        **x_options,
    )
    if times:
        start, end = times[0], times[-1]
        if single:
            start, end = start - SINGLE_READING_SIDE, end + SINGLE_READING_SIDE
        for band_low, band_high in bands:
            # Traced round the rectangle: pygal's fill then closes it along the lower edge.
            corners = [(start, band_high), (end, band_high), (end, band_low), (start, band_low)]
            graph.add(
                "Normal range", corners, fill=True, show_dots=False, stroke_style={"width": 0}
            )
        for name, line in series:
            graph.add(name, list(zip(times, line, strict=True)))
    return _without_scripts(graph)


def average_runs(rows: list, count: int) -> list:
    """At most ``count`` points (public name of the vitals' own averaging, for lab trends)."""
    return _average_runs(rows, count)


def sparkline(actor, patient_id: int, slug: str, *, covered: bool = False) -> bytes:
    """A tiny SVG line of the last ``SPARKLINE_POINTS`` values of one vital (BP: systolic),
    audited unless ``covered`` by the audited page it is shown on."""
    chart = CHARTS[slug]
    name = chart.fields[0]
    column = _column(name)
    with use_case():
        patient = get_patient_for(actor, patient_id)
        recent = db.session.scalars(
            select(column)
            .where(
                VitalSigns.patient_id == patient.id,
                VitalSigns.entered_in_error.is_(False),
                column.is_not(None),
            )
            .order_by(VitalSigns.taken_at.desc())
            .limit(SPARKLINE_POINTS)
        ).all()
        if not covered:
            audit.record(
                actor, "vitals.sparkline.view", patient=patient, category=CATEGORY, detail=slug
            )
    units = clinic_units()
    graph = pygal.Line(
        js=[],
        style=Style(colors=(LINES[0],), background="transparent", plot_background="transparent"),
        show_legend=False,
        disable_xml_declaration=True,
        width=120,
        height=28,
        explicit_size=True,
        margin=2,
        spacing=0,
        # One value alone draws no line: show it as a dot instead of a blank trend.
        show_dots=len(recent) == 1,
        dots_size=2,
        show_x_labels=False,
        show_y_labels=False,
        show_x_guides=False,
        show_y_guides=False,
    )
    graph.add(name, [_shown(name, value, units) for value in reversed(recent)])
    return _without_scripts(graph)


def charts_with_data(patient_id: int) -> list[Chart]:
    """The charts that would draw something: one query counting each vital's values."""
    names = [chart.fields[0] for chart in CHARTS.values()]
    counts = db.session.execute(
        select(*(func.count(_column(name)) for name in names)).where(
            VitalSigns.patient_id == patient_id, VitalSigns.entered_in_error.is_(False)
        )
    ).one()
    return [chart for chart, count in zip(CHARTS.values(), counts, strict=True) if count]

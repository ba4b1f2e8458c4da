"""Chart images and the audit trail (issue 14, section 5): reading a chart page writes one
event for the page, not one more per sparkline or trend image. The images carry a short-lived
signed ticket issued with the audited page (ids only, no patient data); an image asked for
without a valid one is audited on its own."""

from __future__ import annotations

import html
import re
from datetime import date

import pytest

from portal.charting.vitals import charts
from tests.charting.vitals_helpers import form, make_patient
from tests.support.audit import audit_events


@pytest.fixture
def patient(app, signed_in) -> int:
    patient_id = make_patient(app, date(1980, 5, 17), given="Imogen", family="Sparkline")
    nurse = signed_in("nurse")
    for taken_at, rate, weight in (
        ("2026-03-02T09:00", "72", "180"),
        ("2026-06-02T09:00", "80", "176"),
    ):
        saved = nurse.post_form(
            f"/chart/patients/{patient_id}/vitals",
            form(
                taken_at=taken_at,
                heart_rate=rate,
                weight=weight,
                systolic="128",
                diastolic="82",
                pain_score="2",
            ),
        )
        assert saved.status_code == 303
    return patient_id


def _images(page_html: str, ending: str) -> list[str]:
    return [html.unescape(src) for src in re.findall(rf'src="([^"]*{ending}[^"]*)"', page_html)]


def _events_of(app, patient_id: int) -> list:
    return [event for event in audit_events(app) if event.patient_id == patient_id]


def test_the_chart_summary_and_its_sparklines_are_one_event(app, patient, signed_in):
    drlee = signed_in("prescriber")
    before = len(_events_of(app, patient))

    page = drlee.get(f"/chart/patients/{patient}")
    assert page.status_code == 200
    after_page = _events_of(app, patient)[before:]
    sparklines = _images(page.get_data(as_text=True), "sparkline.svg")
    assert len(sparklines) >= 4  # blood pressure, heart rate, weight, pain
    for src in sparklines:
        image = drlee.get(src)
        assert image.status_code == 200 and image.mimetype == "image/svg+xml"

    events = _events_of(app, patient)[before:]
    assert len(after_page) == 1, [e.action for e in after_page]
    assert [e.id for e in events] == [e.id for e in after_page], [e.action for e in events]
    # The ticket in the address holds no patient data.
    assert all("Imogen" not in src and "Sparkline" not in src for src in sparklines)


def test_the_vitals_page_and_its_trend_charts_are_one_event(app, patient, signed_in):
    drlee = signed_in("prescriber")
    before = len(_events_of(app, patient))
    page = drlee.get(f"/chart/patients/{patient}/vitals")
    trends = [src for src in _images(page.get_data(as_text=True), ".svg") if "sparkline" not in src]
    assert len(trends) >= 4
    for src in trends:
        assert drlee.get(src).status_code == 200
    events = _events_of(app, patient)[before:]
    assert [e.action for e in events] == ["vitals.view"]


def test_an_image_without_a_ticket_is_audited_on_its_own(app, patient, signed_in):
    drlee = signed_in("prescriber")
    drlee.get(f"/chart/patients/{patient}/vitals/heart-rate/sparkline.svg")
    drlee.get(f"/chart/patients/{patient}/vitals/weight.svg?window=all")
    actions = [e.action for e in _events_of(app, patient)]
    assert actions.count("vitals.sparkline.view") == 1
    assert actions.count("vitals.chart.view") == 1


def _ticket_of_summary(client, patient_id: int) -> str:
    page = client.get(f"/chart/patients/{patient_id}").get_data(as_text=True)
    [ticket] = {
        re.search(r"page_ticket=([^&]+)", src).group(1) for src in _images(page, "sparkline.svg")
    }
    return ticket


def test_a_ticket_covers_only_its_user_its_patient_and_a_short_time(
    app, patient, signed_in, monkeypatch
):
    drlee, nurse = signed_in("prescriber"), signed_in("nurse")
    other = make_patient(app, date(1990, 1, 2), given="Other", family="Person")
    nurse.post_form(f"/chart/patients/{other}/vitals", form(heart_rate="66"))
    ticket = _ticket_of_summary(drlee, patient)
    path = f"/chart/patients/{patient}/vitals/heart-rate/sparkline.svg"

    def audited(client, url) -> bool:
        count = len(audit_events(app, "vitals.sparkline.view"))
        assert client.get(url).status_code == 200
        return len(audit_events(app, "vitals.sparkline.view")) == count + 1

    assert not audited(drlee, f"{path}?page_ticket={ticket}")
    assert audited(nurse, f"{path}?page_ticket={ticket}")  # another user's ticket
    other_path = f"/chart/patients/{other}/vitals/heart-rate/sparkline.svg"
    assert audited(drlee, f"{other_path}?page_ticket={ticket}")  # another patient's
    assert audited(drlee, f"{path}?page_ticket={ticket[:-2]}xy")  # altered
    monkeypatch.setattr(charts, "IMAGE_TICKET_SECONDS", -1)
    assert audited(drlee, f"{path}?page_ticket={ticket}")  # expired

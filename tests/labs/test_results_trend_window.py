"""An analyte's time window (issue 12, section 4): 3 months, 1 year, 5 years or all, as links
on the analyte's page; the chart and the rows keep to the window; by default the last year,
or all when the last year holds fewer than two values; the chart's image follows the page's
window; a window the page does not offer is not found."""

from __future__ import annotations

import re

from tests.labs.helpers import add_patient
from tests.labs.results_helpers import file_a1c

A1C = "4548-4"
DOT = re.compile(rb'class="dot')


def page_of(client, patient_id: int, window: str | None = None):
    url = f"/labs/patients/{patient_id}/results/analyte?code={A1C}"
    return client.get(url + (f"&window={window}" if window else ""))


def result_rows(text: str) -> int:
    return len(re.findall(r'href="/labs/results/\d+"', text))


def chart_of(client, text: str) -> bytes:
    image = re.search(r'src="([^"]*/results/trend\.svg[^"]*)"', text).group(1)
    response = client.get(image.replace("&amp;", "&"))
    assert response.status_code == 200
    return response.data


def test_each_window_keeps_the_chart_and_the_rows_to_its_period(app, signed_in, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        file_a1c(zone, mrn, [20, 60, 200, 300, 1000, 3000])
    nurse = signed_in("nurse")
    expected = {"3m": 2, "1y": 4, "5y": 5, "all": 6}
    drawn = {}
    for window, count in expected.items():
        page = page_of(nurse, patient_id, window)
        text = page.get_data(as_text=True)
        assert page.status_code == 200
        assert result_rows(text) == count, window
        assert f"window={window}" in re.search(r'src="([^"]*trend\.svg[^"]*)"', text).group(1)
        assert re.search(rf'href="[^"]*window={window}"[^>]*aria-current="page"', text)
        assert text.count('aria-current="page"') == 1
        earlier = 6 - count
        if earlier:
            assert f"{earlier} earlier result" in text
        drawn[window] = len(DOT.findall(chart_of(nurse, text)))
    # The chart draws the window's values: more of them the longer the window.
    assert drawn["3m"] < drawn["1y"] < drawn["5y"] < drawn["all"]
    assert "over the last 3 months: 2 values" in page_of(nurse, patient_id, "3m").get_data(
        as_text=True
    )


def test_the_page_opens_on_the_last_year_when_it_holds_a_trend(app, signed_in, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        file_a1c(zone, mrn, [30, 90, 2000])
    text = page_of(signed_in("nurse"), patient_id).get_data(as_text=True)
    assert re.search(r'href="[^"]*window=1y"[^>]*aria-current="page"', text)
    assert result_rows(text) == 2
    assert "over the last 1 year: 2 values" in text


def test_the_page_opens_on_all_when_the_last_year_holds_too_few(app, signed_in, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        file_a1c(zone, mrn, [200, 900, 2000])  # one value in the last year: no trend
    nurse = signed_in("nurse")
    text = page_of(nurse, patient_id).get_data(as_text=True)
    assert re.search(r'href="[^"]*window=all"[^>]*aria-current="page"', text)
    assert result_rows(text) == 3
    # A window with no results still offers the others.
    empty = page_of(nurse, patient_id, "3m")
    body = empty.get_data(as_text=True)
    assert empty.status_code == 200 and result_rows(body) == 0
    assert "No results of Hemoglobin A1c in the last 3 months." in body
    assert "3 earlier results before this window." in body
    assert 'window=all"' in body and "trend.svg" not in body
    assert page_of(nurse, patient_id, "10y").status_code == 404
    bare = nurse.get(f"/labs/patients/{patient_id}/results/trend.svg?code={A1C}&window=2w")
    assert bare.status_code == 404

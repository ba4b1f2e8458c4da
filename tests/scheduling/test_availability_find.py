"""The "Find next available" page: the search form, the slot list, patient choice for booking."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html import unescape

from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.extensions import db
from tests.scheduling.future_dates import a_winter_monday

MONDAY_DAY = a_winter_monday()
MONDAY = MONDAY_DAY.isoformat()
TUESDAY = (MONDAY_DAY + timedelta(days=1)).isoformat()


def _search(browser, s, htmx=False, **params):
    query = {
        "appointment_type_id": s.follow_up,
        "first_day": MONDAY,
        "last_day": MONDAY,
        "time_of_day": "any",
        **params,
    }
    headers = {"HX-Request": "true"} if htmx else {}
    return browser.get("/schedule/find", query_string=query, headers=headers)


def _book_buttons(html: str) -> list[dict]:
    return [json.loads(unescape(raw)) for raw in re.findall(r"hx-vals='([^']*)'", html)]


def test_the_form_starts_with_the_next_two_weeks(signed_in, schedule):
    response = signed_in("front_desk").get("/schedule/find")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'for="appointment_type_id"' in html and "Follow-up" in html
    assert "Anita Patel" in html and "Jordan Lee" in html
    assert "Choose an appointment type and dates" in html


def test_slots_listed_in_time_order_with_book_buttons(signed_in, schedule):
    s = schedule
    response = _search(signed_in("front_desk"), s, time_of_day="morning")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    buttons = _book_buttons(html)
    assert len(buttons) == 20  # a page of the 2 x 12 (two providers, 08:00-12:00 by 20 min)
    assert [b["starts_at"] for b in buttons] == sorted(b["starts_at"] for b in buttons)
    first = buttons[0]
    assert first["starts_at"] == f"{MONDAY}T13:00:00+00:00"  # 08:00 EST
    assert first["appointment_type_id"] == s.follow_up
    assert first["location_id"] == s.main_street
    assert {b["provider_id"] for b in buttons[:2]} == {s.drlee, s.drpatel}
    assert len({b["request_key"] for b in buttons}) == len(buttons)
    assert 'hx-post="/schedule/appointments"' in html
    assert 'hx-include="#find-patient-choice"' in html
    assert "08:00\u201308:20" in html  # shown in clinic time (an en dash between)
    assert "The first 20 open slots for Follow-up" in html


def test_htmx_search_answers_only_the_results(signed_in, schedule):
    response = _search(signed_in("nurse"), schedule, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html and "<table" in html
    assert "HX-Request" in response.headers.get("Vary", "")


def test_chosen_providers_and_types_they_offer(signed_in, schedule):
    s = schedule
    browser = signed_in("front_desk")
    only_patel = _book_buttons(_search(browser, s, provider_ids=s.drpatel).get_data(as_text=True))
    assert only_patel and {b["provider_id"] for b in only_patel} == {s.drpatel}
    # drpatel doesn't do procedures: nothing to offer, said plainly.
    response = _search(browser, s, appointment_type_id=s.procedure, provider_ids=s.drpatel)
    assert response.status_code == 200
    assert "No open slots for Procedure" in response.get_data(as_text=True)


def test_bad_searches_say_what_is_wrong(signed_in, schedule):
    s = schedule
    browser = signed_in("front_desk")
    response = _search(browser, s, first_day=TUESDAY, last_day=MONDAY)
    assert response.status_code == 422
    assert "The last day can&#39;t be before the first day." in response.get_data(as_text=True)
    response = _search(browser, s, first_day="1900-01-01")
    assert response.status_code == 422
    assert "Search from today onwards." in response.get_data(as_text=True)
    response = _search(browser, s, appointment_type_id="")
    assert response.status_code == 422
    response = _search(browser, s, last_day=(MONDAY_DAY + timedelta(days=92)).isoformat())
    assert response.status_code == 422
    assert "at most 92 days" in response.get_data(as_text=True)
    response = _search(browser, s, first_day="not a date")
    assert response.status_code == 422


def test_choosing_the_patient_to_book_is_an_audited_registry_search(app, signed_in, schedule):
    s = schedule
    browser = signed_in("front_desk")
    response = browser.htmx_post("/schedule/find/patients", {"q": "Lovelace"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'name="patient_id" id="book-patient-{s.patients[0]}" value="{s.patients[0]}"' in html
    assert "Lovelace" in html
    assert " checked" not in html  # a lone match is never chosen by itself
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient.search")
        ).one()
        assert "Lovelace" not in (event.detail or "")
    assert "No matching patients" in browser.htmx_post(
        "/schedule/find/patients", {"q": "Nobody"}
    ).get_data(as_text=True)


def _later_link(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)"[^>]*>Show later slots</a>', html)
    return unescape(found.group(1)) if found else None


def test_long_lists_come_a_page_at_a_time_and_the_pages_hold_every_slot_once(signed_in, schedule):
    browser = signed_in("front_desk")
    html = _search(browser, schedule, last_day=TUESDAY).get_data(as_text=True)
    assert "The first 20 open slots for Follow-up" in html
    assert "Back to the earliest slots" not in html
    pages = [_book_buttons(html)]
    while (link := _later_link(html)) is not None:
        assert "after=" in link
        response = browser.get(link, headers={"HX-Request": "true"})
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "<html" not in html and "Back to the earliest slots" in html
        pages.append(_book_buttons(html))
    # Two providers, two days, 08:00-12:00 and 13:00-17:00 by 20 minutes: 96 slots.
    assert [len(page) for page in pages] == [20, 20, 20, 20, 16]
    assert "16 more open slots for Follow-up" in html
    starts = [(b["starts_at"], b["provider_id"]) for page in pages for b in page]
    assert starts == sorted(starts) and len(set(starts)) == 96


def test_a_page_link_with_an_impossible_provider_starts_again_from_the_first_slots(
    signed_in, schedule
):
    """``after_provider`` beyond the integer columns' range used to reach the query (500)."""
    browser = signed_in("front_desk")
    html = _search(browser, schedule, last_day=TUESDAY).get_data(as_text=True)
    link = _later_link(html)
    assert link is not None and "after_provider=" in link
    tampered = re.sub(r"after_provider=\d+", "after_provider=" + "9" * 20, link)
    response = browser.get(tampered, headers={"HX-Request": "true"})
    assert response.status_code == 200
    again = _book_buttons(response.get_data(as_text=True))
    assert [(b["provider_id"], b["starts_at"]) for b in again] == [
        (b["provider_id"], b["starts_at"]) for b in _book_buttons(html)
    ]

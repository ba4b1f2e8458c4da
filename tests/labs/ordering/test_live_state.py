"""An order's badge refreshes itself while the order is in flight (issue 12, section 1's
statuses): the order's page, the visit's and the patient's lists ask htmx to fetch the
badge again every 12 s while the order is signed, sent, acknowledged or partially resulted;
the answer once the lab delivered it all (or the order ended) carries no trigger, so the
asking stops; the polls write no audit event (the page that shows the badge did); the
object-level checks are the order page's."""

from __future__ import annotations

import re

from tests.labs.ordering.helpers import add, set_status, sign, start
from tests.support.audit import audit_events

POLLS = re.compile(r'hx-get="/labs/orders/(\d+)/state(?:\?shown=\w+)?" hx-trigger="every 12s"')


POLL = {"HX-Request": "true", "X-Portal-Background": "1"}


def badge(client, order_id: int) -> str:
    response = client.get(f"/labs/orders/{order_id}/state", headers=POLL)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def poll_from_order_page(client, order_id: int, shown: str):
    response = client.get(f"/labs/orders/{order_id}/state?shown={shown}", headers=POLL)
    assert response.status_code == 200
    return response


def test_the_badge_asks_again_while_in_flight_and_stops_after(
    app, signed_in, make_encounter, chart
):
    encounter_id = make_encounter()
    patient_id = chart.patients[0]
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id, encounter_id)
    add(doctor, order_id, "4548-4")
    draft = doctor.get(f"/labs/orders/{order_id}").get_data(as_text=True)
    assert not POLLS.search(draft)  # a draft moves only when its prescriber moves it
    assert sign(doctor, order_id).status_code == 303
    # Every page showing the signed order's badge asks for it again.
    for url in (
        f"/labs/orders/{order_id}",
        f"/chart/encounters/{encounter_id}",
        f"/labs/patients/{patient_id}/orders",
    ):
        assert POLLS.findall(doctor.get(url).get_data(as_text=True)) == [str(order_id)], url
    events = len(audit_events(app))
    for status, words in (
        ("signed", "Signed"),
        ("sent", "Sent to the lab"),
        ("acknowledged", "Acknowledged by the lab"),
        ("partially_resulted", "Partially resulted"),
    ):
        set_status(app, order_id, status)
        answer = badge(doctor, order_id)
        assert f'data-state="{status}"' in answer and words in answer
        assert POLLS.search(answer), status  # still in flight: keeps asking
        assert "<html" not in answer
    for status, words in (
        ("resulted", "Resulted"),
        ("reviewed", "Reviewed"),
        ("cancelled", "Cancelled"),
        ("error", "Refused by the lab"),
    ):
        set_status(app, order_id, status)
        answer = badge(doctor, order_id)
        assert f'data-state="{status}"' in answer and words in answer
        assert "hx-trigger" not in answer, status  # nothing more arrives: the asking stops
    assert len(audit_events(app)) == events  # eight polls, no event


def test_the_badge_shows_only_what_its_page_would(app, signed_in, chart):
    patient_id = chart.patients[0]
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    # Another prescriber's draft is theirs alone, as its page is; unknown orders are unknown.
    assert signed_in("nurse").get(f"/labs/orders/{order_id}/state").status_code == 404
    assert doctor.get("/labs/orders/999999/state").status_code == 404
    assert signed_in("frontdesk").get(f"/labs/orders/{order_id}/state").status_code == 403


def test_the_polls_do_not_keep_an_unattended_session_alive(app, signed_in, chart):
    from datetime import timedelta

    from tests.auth.helpers import age_session, session_row, session_token

    doctor = signed_in("drlee", through_the_form=True)
    order_id = start(doctor, chart.patients[0])
    add(doctor, order_id, "4548-4")
    assert sign(doctor, order_id).status_code == 303
    page = doctor.get(f"/labs/orders/{order_id}").get_data(as_text=True)
    assert """hx-headers='{"X-Portal-Background": "1"}'""" in page
    token = session_token(doctor)
    age_session(app, token, last_seen_at=timedelta(minutes=10))
    seen = session_row(app, token).last_seen_at
    assert POLLS.search(badge(doctor, order_id))
    assert session_row(app, token).last_seen_at == seen  # a poll is not the user


def test_on_the_order_page_a_new_state_refreshes_the_details_too(
    app, signed_in, make_encounter, chart
):
    """The order's own page polls saying which state it shows; an answer with another state
    (the order resulted, or its first results came) carries an ``HX-Trigger`` event on
    which the page's details (See the results, Cancel order) ask for themselves again. The
    same state, or a badge on another page, carries none."""
    encounter_id = make_encounter()
    doctor = signed_in("drlee")
    order_id = start(doctor, chart.patients[0], encounter_id)
    add(doctor, order_id, "4548-4")
    assert sign(doctor, order_id).status_code == 303
    page = doctor.get(f"/labs/orders/{order_id}").get_data(as_text=True)
    assert f'hx-get="/labs/orders/{order_id}/state?shown=signed"' in page
    assert 'hx-trigger="lab-order-changed from:body"' in page and 'id="order-details"' in page
    # Other pages' badges do not say what they show: nothing there listens.
    for url in (f"/chart/encounters/{encounter_id}", f"/labs/patients/{chart.patients[0]}/orders"):
        assert f"/labs/orders/{order_id}/state?" not in doctor.get(url).get_data(as_text=True)
    unchanged = poll_from_order_page(doctor, order_id, "signed")
    assert "HX-Trigger" not in unchanged.headers
    assert "state?shown=signed" in unchanged.get_data(as_text=True)  # still asking
    set_status(app, order_id, "partially_resulted")
    first_results = poll_from_order_page(doctor, order_id, "signed")
    assert first_results.headers["HX-Trigger"] == "lab-order-changed"
    assert "state?shown=partially_resulted" in first_results.get_data(as_text=True)
    set_status(app, order_id, "resulted")
    resulted = poll_from_order_page(doctor, order_id, "partially_resulted")
    assert resulted.headers["HX-Trigger"] == "lab-order-changed"
    assert "hx-trigger=" not in resulted.get_data(as_text=True)  # out of flight: stops asking
    assert "HX-Trigger" not in doctor.get(f"/labs/orders/{order_id}/state", headers=POLL).headers
    # The event's request: the details alone, in the new state.
    details = doctor.get(f"/labs/orders/{order_id}", headers=POLL)
    assert details.status_code == 200
    text = details.get_data(as_text=True)
    assert "<html" not in text and text.lstrip().startswith('<div id="order-details"')
    assert "See the results" in text and "Cancel order" not in text

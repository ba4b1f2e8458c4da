"""An order's badge refreshes itself while the order is in flight (issue 12, section 1's
statuses): the order's page, the visit's and the patient's lists ask htmx to fetch the
badge again every 12 s while the order is signed, sent, acknowledged or partially resulted;
the answer once the lab delivered it all (or the order ended) carries no trigger, so the
asking stops; the polls write no audit event (the page that shows the badge did); the
object-level checks are the order page's."""

from __future__ import annotations

import re

from sqlalchemy import update

from portal.extensions import db
from portal.labs.models import LabOrder
from tests.labs.ordering.helpers import add, sign, start
from tests.support.audit import audit_events

POLLS = re.compile(r'hx-get="/labs/orders/(\d+)/state" hx-trigger="every 12s"')


def set_status(app, order_id: int, status: str) -> None:
    with app.app_context():
        db.session.execute(update(LabOrder).where(LabOrder.id == order_id).values(status=status))
        db.session.commit()


POLL = {"HX-Request": "true", "X-Portal-Background": "1"}


def badge(client, order_id: int) -> str:
    response = client.get(f"/labs/orders/{order_id}/state", headers=POLL)
    assert response.status_code == 200
    return response.get_data(as_text=True)


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

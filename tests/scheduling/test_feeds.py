"""Providers' iCalendar feeds: created by an admin (token shown once, only its hash kept),
readable without signing in at the token's URL, revocable, without patients' names unless
the clinic allows them (and then audited)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from icalendar import Calendar
from sqlalchemy import select

from portal.extensions import db
from tests.scheduling.flow_support import audit_events, make_appointment, today_at

FEED_URL = re.compile(
    r'id="new-feed-url" type="text" readonly value="http://localhost(/schedule/feeds/[^"]+\.ics)"'
)


def _create_feed(signed_in, provider_id):
    admin = signed_in("admin")
    response = admin.post_form("/schedule/feeds", {"provider_id": provider_id})
    assert response.status_code == 200
    match = FEED_URL.search(response.get_data(as_text=True))
    assert match, "the new feed's address is shown"
    return admin, match.group(1)


def test_a_feed_shows_times_type_and_location_without_names(app, schedule, signed_in, client):
    from portal.scheduling.models import CalendarFeed

    start = today_at(9) + timedelta(days=1)
    make_appointment(app, schedule, starts_at=start, room_id=schedule.exam_room_1)
    make_appointment(
        app, schedule, starts_at=start + timedelta(hours=2), patient=1, status="cancelled"
    )
    make_appointment(app, schedule, starts_at=start, patient=2, provider="drpatel")
    _, path = _create_feed(signed_in, schedule.drlee)
    token = path.rsplit("/", 1)[1].removesuffix(".ics")
    with app.app_context():
        [feed] = db.session.scalars(select(CalendarFeed)).all()
        assert feed.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert feed.provider_id == schedule.drlee
        events_before = len(audit_events())

    response = client.get(path)  # not signed in
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    calendar = Calendar.from_ical(response.data)
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT15M" in response.get_data(as_text=True)
    events = [c for c in calendar.walk("VEVENT")]
    assert len(events) == 1  # drlee's active appointment only
    event = events[0]
    assert event.decoded("dtstart") == start
    assert event.decoded("dtend") == start + timedelta(minutes=20)
    assert str(event["summary"]) == "Follow-up"
    assert str(event["location"]) == "Main Street, Exam 1"
    assert "Lovelace" not in response.get_data(as_text=True)
    with app.app_context():
        assert len(audit_events()) == events_before  # no patient data: not a patient view


def test_with_the_clinic_setting_on_names_show_and_reading_is_audited(
    app, schedule, signed_in, client
):
    from portal.clinic.models import Clinic

    make_appointment(app, schedule, starts_at=today_at(9) + timedelta(days=1))
    with app.app_context():
        db.session.scalars(select(Clinic)).one().calendar_feed_shows_names = True
        db.session.commit()
    _, path = _create_feed(signed_in, schedule.drlee)
    response = client.get(path)
    assert response.status_code == 200
    [event] = Calendar.from_ical(response.data).walk("VEVENT")
    assert str(event["summary"]) == "Follow-up: Lovelace, Ada"
    with app.app_context():
        [read] = audit_events("calendar_feed.read")
        assert read.category == "appointments"
        assert read.username.startswith("integration:calendar-feed-")  # an integration actor
        assert "Lovelace" not in read.detail


def test_revoked_and_unknown_tokens_answer_404(app, schedule, signed_in, client):
    from portal.scheduling.models import CalendarFeed

    admin, path = _create_feed(signed_in, schedule.drlee)
    assert client.get(path).status_code == 200
    with app.app_context():
        feed_id = db.session.scalars(select(CalendarFeed)).one().id
    revoked = admin.post_form(f"/schedule/feeds/{feed_id}/revoke")
    assert revoked.status_code == 303
    assert client.get(path).status_code == 404
    assert client.get("/schedule/feeds/not-a-real-token.ics").status_code == 404
    page = admin.get("/schedule/feeds").get_data(as_text=True)
    assert "Revoked" in page
    assert path not in page  # the address is shown only once, when created
    with app.app_context():
        assert [e.action for e in audit_events() if e.action.startswith("calendar_feed.")] == [
            "calendar_feed.create",
            "calendar_feed.revoke",
        ]


def test_only_providers_get_feeds(app, schedule, signed_in):
    from portal.auth.models import User
    from portal.scheduling.models import CalendarFeed

    with app.app_context():
        nurse_id = db.session.scalars(select(User.id).filter_by(username="nurse")).one()
    admin = signed_in("admin")
    response = admin.post_form("/schedule/feeds", {"provider_id": nurse_id})
    assert response.status_code == 422
    with app.app_context():
        assert db.session.scalars(select(CalendarFeed)).all() == []


def test_a_provider_makes_and_revokes_their_own_feed(app, schedule, signed_in, client):
    from portal.scheduling.models import CalendarFeed

    make_appointment(app, schedule, starts_at=today_at(9) + timedelta(days=1))
    drlee = signed_in("prescriber")
    created = drlee.post_form("/schedule/my-feed")
    assert created.status_code == 200
    match = FEED_URL.search(created.get_data(as_text=True))
    assert match
    assert len(Calendar.from_ical(client.get(match.group(1)).data).walk("VEVENT")) == 1
    with app.app_context():
        feed = db.session.scalars(select(CalendarFeed)).one()
        assert feed.provider_id == schedule.drlee
    # Nobody else can revoke it through the self-service page.
    other = signed_in("front_desk")
    assert other.post_form(f"/schedule/my-feed/{feed.id}/revoke").status_code == 404
    assert client.get(match.group(1)).status_code == 200
    assert drlee.post_form(f"/schedule/my-feed/{feed.id}/revoke").status_code == 303
    assert client.get(match.group(1)).status_code == 404


def test_staff_who_are_not_providers_get_no_feed(app, schedule, signed_in):
    from portal.scheduling.models import CalendarFeed

    nurse = signed_in("nurse")
    assert "Only providers have a calendar feed" in nurse.get("/schedule/my-feed").get_data(
        as_text=True
    )
    assert nurse.post_form("/schedule/my-feed").status_code == 422
    with app.app_context():
        assert db.session.scalars(select(CalendarFeed)).all() == []

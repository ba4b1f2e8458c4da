"""Providers' iCalendar feeds: created by the provider themselves (token shown once, only its
hash kept), readable without signing in at the token's URL, revocable (by the provider or an
admin), without patients' names unless the provider chose them and the clinic allows them
(and then audited); and stopped at once when the provider's account is disabled or loses the
provider role (issue 14, security findings 1 and 2)."""

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


def _create_feed(signed_in, *, names: bool = False, who: str = "prescriber"):
    """The provider's own feed, made on "My calendar feed"; returns (their client, path)."""
    provider = signed_in(who)
    response = provider.post_form("/schedule/my-feed", {"shows_names": "y"} if names else {})
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    match = FEED_URL.search(response.get_data(as_text=True))
    assert match, "the new feed's address is shown"
    return provider, match.group(1)


def _allow_names(app, allowed: bool = True):
    from portal.clinic.models import Clinic

    with app.app_context():
        db.session.scalars(select(Clinic)).one().calendar_feed_shows_names = allowed
        db.session.commit()


def test_a_feed_shows_times_type_and_location_without_names(app, schedule, signed_in, client):
    from portal.scheduling.models import CalendarFeed

    start = today_at(9) + timedelta(days=1)
    make_appointment(app, schedule, starts_at=start, room_id=schedule.exam_room_1)
    make_appointment(
        app, schedule, starts_at=start + timedelta(hours=2), patient=1, status="cancelled"
    )
    make_appointment(app, schedule, starts_at=start, patient=2, provider="drpatel")
    _, path = _create_feed(signed_in)
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


def test_names_show_when_the_provider_chose_them_and_reading_is_audited(
    app, schedule, signed_in, client
):
    make_appointment(app, schedule, starts_at=today_at(9) + timedelta(days=1))
    _allow_names(app)
    _, path = _create_feed(signed_in, names=True)
    response = client.get(path)
    assert response.status_code == 200
    [event] = Calendar.from_ical(response.data).walk("VEVENT")
    assert str(event["summary"]) == "Follow-up: Lovelace, Ada"
    with app.app_context():
        [read] = audit_events("calendar_feed.read")
        assert read.category == "appointments"
        assert read.username.startswith("integration:calendar-feed-")  # an integration actor
        assert "Lovelace" not in read.detail
        [created] = audit_events("calendar_feed.create")
        assert created.username == "drlee" and "names=yes" in created.detail


def test_the_clinic_setting_alone_puts_no_names_in_a_feed(app, schedule, signed_in, client):
    """Allowing names is the clinic's policy; naming patients is each provider's choice."""
    make_appointment(app, schedule, starts_at=today_at(9) + timedelta(days=1))
    _allow_names(app)
    _, path = _create_feed(signed_in)  # the box left unticked
    [event] = Calendar.from_ical(client.get(path).data).walk("VEVENT")
    assert str(event["summary"]) == "Follow-up"
    with app.app_context():
        assert audit_events("calendar_feed.read") == []


def test_turning_the_clinic_setting_off_removes_names_from_every_feed(
    app, schedule, signed_in, client
):
    make_appointment(app, schedule, starts_at=today_at(9) + timedelta(days=1))
    _allow_names(app)
    _, path = _create_feed(signed_in, names=True)
    _allow_names(app, False)
    [event] = Calendar.from_ical(client.get(path).data).walk("VEVENT")
    assert str(event["summary"]) == "Follow-up"


def test_names_are_refused_while_the_clinic_does_not_allow_them(app, schedule, signed_in):
    from portal.scheduling.models import CalendarFeed

    drlee = signed_in("prescriber")
    page = drlee.get("/schedule/my-feed").get_data(as_text=True)
    assert "Show patients&#39; names in this feed" not in page  # not offered
    response = drlee.post_form("/schedule/my-feed", {"shows_names": "y"})  # forged
    assert response.status_code == 422
    assert 'id="shows_names-error"' in response.get_data(as_text=True)
    assert "does not allow" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(CalendarFeed)).all() == []


def test_an_admin_cannot_create_a_feed_for_anyone(app, schedule, signed_in):
    """An admin has no patient access: holding a provider's feed address would give it."""
    from portal.scheduling.models import CalendarFeed

    admin = signed_in("admin")
    assert "Create feed" not in admin.get("/schedule/feeds").get_data(as_text=True)
    assert admin.post_form("/schedule/feeds", {"provider_id": schedule.drlee}).status_code == 405
    assert admin.post_form("/schedule/my-feed").status_code == 403
    with app.app_context():
        assert db.session.scalars(select(CalendarFeed)).all() == []


def test_revoked_and_unknown_tokens_answer_404(app, schedule, signed_in, client):
    from portal.scheduling.models import CalendarFeed

    _, path = _create_feed(signed_in)
    assert client.get(path).status_code == 200
    with app.app_context():
        feed_id = db.session.scalars(select(CalendarFeed)).one().id
    admin = signed_in("admin")
    revoked = admin.post_form(f"/schedule/feeds/{feed_id}/revoke")
    assert revoked.status_code == 303
    assert client.get(path).status_code == 404
    assert client.get("/schedule/feeds/not-a-real-token.ics").status_code == 404
    page = admin.get("/schedule/feeds").get_data(as_text=True)
    assert "Revoked" in page
    assert path not in page  # the address is shown only once, to the provider
    with app.app_context():
        assert [e.action for e in audit_events() if e.action.startswith("calendar_feed.")] == [
            "calendar_feed.create",
            "calendar_feed.revoke",
        ]
        # The provider is told at their next sign-in who revoked it.
        [notice] = _notices(schedule.drlee)
        assert notice.kind == "calendar_feed_revoked" and notice.actor_name == "Pat Kim"


def _notices(user_id):
    from portal.auth.models import AccountNotice

    return db.session.scalars(select(AccountNotice).where(AccountNotice.user_id == user_id)).all()


def _set_account(app, username, **values):
    from portal.auth.models import User

    with app.app_context():
        db.session.execute(db.update(User).where(User.username == username).values(**values))
        db.session.commit()


def test_a_feed_stops_when_its_provider_is_disabled_whatever_the_way(
    app, schedule, signed_in, client
):
    """Checked when the feed is read: even an account disabled without the admin page (the
    database edited, a restore) serves nothing."""
    make_appointment(app, schedule, starts_at=today_at(9) + timedelta(days=1))
    _allow_names(app)
    _, path = _create_feed(signed_in, names=True)
    assert client.get(path).status_code == 200
    _set_account(app, "drlee", is_enabled=False)
    response = client.get(path)
    assert response.status_code == 404
    assert b"Lovelace" not in response.data


def test_a_feed_stops_when_its_provider_loses_the_provider_role(app, schedule, signed_in, client):
    from portal.auth.models import UserRole

    _, path = _create_feed(signed_in)
    assert client.get(path).status_code == 200
    with app.app_context():
        db.session.execute(db.delete(UserRole).where(UserRole.user_id == schedule.drlee))
        db.session.add(UserRole(user_id=schedule.drlee, role="nurse"))
        db.session.commit()
    assert client.get(path).status_code == 404


def test_disabling_a_provider_revokes_their_feeds_audited_and_told(
    app, schedule, signed_in, client
):
    from portal.scheduling.models import CalendarFeed

    _, path = _create_feed(signed_in)
    _, second = _create_feed(signed_in)
    admin = signed_in("admin")
    assert admin.post_form(f"/admin/users/{schedule.drlee}/disable").status_code == 302
    assert admin.post_form(f"/admin/users/{schedule.drlee}/enable").status_code == 302
    # Enabled again, the old addresses stay dead: they were revoked, not only paused.
    assert client.get(path).status_code == 404
    assert client.get(second).status_code == 404
    with app.app_context():
        feeds = db.session.scalars(select(CalendarFeed)).all()
        assert len(feeds) == 2 and all(feed.revoked_at is not None for feed in feeds)
        revokes = audit_events("calendar_feed.revoke")
        assert len(revokes) == 2
        assert all(e.username == "admin" and "reason=disabled" in e.detail for e in revokes)
        [notice] = _notices(schedule.drlee)
        assert notice.kind == "calendar_feeds_revoked_disabled"


def test_removing_the_provider_role_revokes_their_feeds(app, schedule, signed_in, client):
    from portal.scheduling.models import CalendarFeed

    _, path = _create_feed(signed_in)
    admin = signed_in("admin")
    # Another role added, then removed: the feed stays.
    for roles in (["prescriber", "nurse"], ["prescriber"]):
        edited = admin.post_form(
            f"/admin/users/{schedule.drlee}", {"full_name": "Jordan Lee", "roles": roles}
        )
        assert edited.status_code == 302
    assert client.get(path).status_code == 200
    edited = admin.post_form(
        f"/admin/users/{schedule.drlee}", {"full_name": "Jordan Lee", "roles": ["nurse"]}
    )
    assert edited.status_code == 302
    assert client.get(path).status_code == 404
    with app.app_context():
        assert db.session.scalars(select(CalendarFeed)).one().revoked_at is not None
        [revoke] = audit_events("calendar_feed.revoke")
        assert "reason=roles_removed" in revoke.detail
        [notice] = _notices(schedule.drlee)
        assert notice.kind == "calendar_feeds_revoked_role"
    # The admins' list still says whose feed it was, now that they are no provider.
    row = re.search(r"<tr>\s*<td>([^<]*)</td>", admin.get("/schedule/feeds").get_data(as_text=True))
    assert row.group(1) == "Jordan Lee"


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
    with app.app_context():
        assert _notices(schedule.drlee) == []  # their own act: nothing to tell them


def test_staff_who_are_not_providers_get_no_feed(app, schedule, signed_in):
    from portal.scheduling.models import CalendarFeed

    nurse = signed_in("nurse")
    assert "Only providers have a calendar feed" in nurse.get("/schedule/my-feed").get_data(
        as_text=True
    )
    assert nurse.post_form("/schedule/my-feed").status_code == 422
    with app.app_context():
        assert db.session.scalars(select(CalendarFeed)).all() == []

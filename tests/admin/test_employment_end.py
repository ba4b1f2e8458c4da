"""The last day of a person's employment (issue 14, security finding 1: "ended employment must
stop every feed at once"): an admin records it on the account; from the clinic's next
midnight the account is disabled by the worker (sessions end, calendar feeds revoked, all
audited as the system), and a feed stops answering even before the worker has run."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from portal.admin import jobs
from portal.auth.models import AccountNotice, User
from portal.clinic.clock import clinic_today
from portal.extensions import db
from portal.scheduling.models import CalendarFeed
from tests.audit.helpers import events
from tests.auth.helpers import field_error, get_user, page_text

FEED_URL = re.compile(r'value="http://localhost(/schedule/feeds/[^"]+\.ics)"')


def _today(app):
    with app.app_context():
        return clinic_today()


def _drlee_id(app) -> int:
    return get_user(app, "drlee").id


def _save_last_day(admin, user_id: int, last_day, roles=("prescriber",)):
    return admin.post_form(
        f"/admin/users/{user_id}",
        {
            "full_name": "Jordan Lee",
            "roles": list(roles),
            "employment_ends_on": last_day.isoformat() if last_day else "",
        },
    )


def _make_feed(signed_in) -> str:
    response = signed_in("prescriber").post_form("/schedule/my-feed")
    return FEED_URL.search(page_text(response)).group(1)


def test_a_future_last_day_leaves_the_account_open_until_it_passes(app, signed_in, client):
    admin = signed_in("admin")
    path = _make_feed(signed_in)
    drlee = signed_in("prescriber")
    today = _today(app)
    assert _save_last_day(admin, _drlee_id(app), today).status_code == 302
    assert get_user(app, "drlee").employment_ends_on == today
    assert "Employment ends" in page_text(admin.get(f"/admin/users/{_drlee_id(app)}"))
    assert client.get(path).status_code == 200  # their last day: still at work
    assert drlee.get("/").status_code == 200
    with app.app_context():
        assert jobs.end_employment() is None  # nothing to do yet
    assert get_user(app, "drlee").is_enabled
    [update] = events(app, "user.update")
    assert f"employment ends {today.isoformat()}" in update.detail


def test_the_day_after_the_feed_stops_before_the_worker_and_the_worker_disables(
    app, signed_in, client
):
    path = _make_feed(signed_in)
    drlee = signed_in("prescriber")
    yesterday = _today(app) - timedelta(days=1)
    with app.app_context():
        user = db.session.get(User, _drlee_id(app))
        user.employment_ends_on = yesterday  # as if midnight passed since it was saved
        db.session.commit()
    assert client.get(path).status_code == 404  # at once, whatever the worker does
    with app.app_context():
        assert jobs.end_employment() == "disabled 1 account(s) whose employment ended"
        assert db.session.scalars(select(CalendarFeed)).one().revoked_at is not None
    assert not get_user(app, "drlee").is_enabled
    assert drlee.get("/").status_code == 302  # the session ended
    [disabled] = events(app, "user.disable")
    assert disabled.username == "system" and disabled.detail == "employment ended"
    [revoked] = events(app, "calendar_feed.revoke")
    assert revoked.username == "system" and "reason=disabled" in revoked.detail
    with app.app_context():
        [notice] = db.session.scalars(select(AccountNotice)).all()
        assert notice.kind == "calendar_feeds_revoked_disabled"
        assert notice.actor_name == "the portal"  # "…when the portal disabled your account"


def test_a_last_day_already_past_disables_at_once(app, signed_in):
    admin = signed_in("admin")
    nurse = signed_in("nurse")
    nurse_id = get_user(app, "nurse").id
    last_week = _today(app) - timedelta(days=7)
    response = _save_last_day(admin, nurse_id, last_week, roles=("nurse",))
    assert response.status_code == 302
    assert not get_user(app, "nurse").is_enabled
    assert nurse.get("/").status_code == 302
    [disabled] = events(app, "user.disable")
    assert disabled.username == "admin" and disabled.detail == "employment ended"
    # Enabling again is refused until the last day is changed or cleared.
    refused = admin.post_form(f"/admin/users/{nurse_id}/enable")
    assert refused.status_code == 409
    assert "Their employment ended on" in page_text(refused)
    assert not get_user(app, "nurse").is_enabled
    _save_last_day(admin, nurse_id, None, roles=("nurse",))
    assert admin.post_form(f"/admin/users/{nurse_id}/enable").status_code == 302
    assert get_user(app, "nurse").is_enabled


def test_a_last_day_out_of_range_is_refused_beside_the_field(app, signed_in):
    admin = signed_in("admin")
    for typed in ("9999-12-31", "0202-01-01"):
        response = admin.post_form(
            f"/admin/users/{_drlee_id(app)}",
            {"full_name": "Jordan Lee", "roles": ["prescriber"], "employment_ends_on": typed},
        )
        assert response.status_code == 422, typed
        assert "Enter a date on or" in field_error(response, "employment_ends_on")
    assert get_user(app, "drlee").employment_ends_on is None
    assert get_user(app, "drlee").is_enabled


def test_an_admin_does_not_end_their_own_employment(app, signed_in):
    admin = signed_in("admin")
    admin_id = get_user(app, "admin").id
    response = admin.post_form(
        f"/admin/users/{admin_id}",
        {
            "full_name": "Pat Kim",
            "roles": ["admin"],
            "employment_ends_on": (_today(app) - timedelta(days=1)).isoformat(),
        },
    )
    assert response.status_code == 422
    assert "Another administrator" in field_error(response, "employment_ends_on")
    assert get_user(app, "admin").is_enabled


def test_the_worker_runs_the_job(app):
    with app.app_context():
        user = db.session.get(User, _drlee_id(app))
        user.employment_ends_on = clinic_today() - timedelta(days=1)
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert not get_user(app, "drlee").is_enabled

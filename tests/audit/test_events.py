"""What an event records: who (and in which roles), what, to which record, from where, outcome."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from portal.audit import sealing
from portal.auth.models import User
from portal.extensions import db
from tests.audit.helpers import events
from tests.support.database import PASSWORD


def account_id(app, username: str) -> int:
    with app.app_context():
        found = db.session.scalar(select(User.id).where(User.username == username))
        db.session.remove()
    return found


def test_sign_in_event(app, client):
    client.sign_in("frontdesk")
    (event,) = events(app, "auth.sign_in")
    assert event.user_id == account_id(app, "frontdesk")
    assert event.username == "frontdesk"
    assert event.user_roles == "front_desk"
    assert event.outcome == "success"
    assert event.source == "127.0.0.1"
    assert event.patient_id is None
    assert event.occurred_at.tzinfo is not None


def test_failed_sign_in_event_is_denied_and_keeps_no_password(app, client):
    client.refresh_csrf()
    response = client.post_form(
        "/auth/sign-in", {"username": "nurse", "password": "wrong password entirely"}
    )
    assert response.status_code == 401
    (event,) = events(app, "auth.sign_in_failed")
    assert event.username == "nurse" and event.user_roles == "nurse"
    assert event.outcome == "denied"
    assert event.source == "127.0.0.1"
    assert "wrong password entirely" not in (event.detail or "")


def test_denied_access_event(app, signed_in):
    frontdesk = signed_in("front_desk")
    response = frontdesk.get("/admin/users", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 403
    (event,) = events(app, "access.denied")
    assert event.user_id == account_id(app, "frontdesk")
    assert event.username == "frontdesk"
    assert event.user_roles == "front_desk"
    assert event.outcome == "denied"
    assert event.object_type == "endpoint" and event.object_id == "admin.users"
    assert event.source == "10.1.2.3"
    assert "users.manage" in event.detail


def test_user_change_event(app, signed_in):
    admin = signed_in("admin")
    nurse_id = account_id(app, "nurse")
    response = admin.post_form(
        f"/admin/users/{nurse_id}",
        {"full_name": "Sam Okafor", "roles": ["nurse", "front_desk"]},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.status_code == 302
    (event,) = events(app, "user.update")
    assert event.user_id == account_id(app, "admin")
    assert event.username == "admin" and event.user_roles == "admin"
    assert event.action == "user.update"
    assert event.category == "user accounts"
    assert event.object_type == "users" and event.object_id == str(nurse_id)
    assert event.source == "192.0.2.7"
    assert event.outcome == "success"
    assert event.detail == "roles nurse -> front_desk,nurse"


def test_a_refused_change_writes_no_success_event(app, signed_in):
    admin = signed_in("admin")
    admin_id = account_id(app, "admin")
    admin.post_form(f"/admin/users/{admin_id}", {"full_name": "Pat Kim", "roles": ["nurse"]})
    assert events(app, "user.update") == []


# --- concurrent writers ---------------------------------------------------------------------

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def _sign_in_and_browse(base_url: str, username: str, start: threading.Barrier) -> list[int]:
    """One browser: sign in, open home, try an admin page. Each step writes events."""
    with requests.Session() as browser:
        token = CSRF.search(browser.get(f"{base_url}/auth/sign-in", timeout=30).text).group(1)
        start.wait(timeout=30)  # every thread signs in at the same moment
        signed = browser.post(
            f"{base_url}/auth/sign-in",
            data={"username": username, "password": PASSWORD, "csrf_token": token},
            allow_redirects=False,
            timeout=60,
        )
        home = browser.get(f"{base_url}/", timeout=60)
        refused = browser.get(f"{base_url}/admin/users", timeout=60)
        return [signed.status_code, home.status_code, refused.status_code]


def _run_parallel_and_check_chain(app, live_server, threads: int) -> None:
    start = threading.Barrier(threads)
    names = ["frontdesk", "nurse"]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [
            pool.submit(_sign_in_and_browse, live_server, names[i % 2], start)
            for i in range(threads)
        ]
        statuses = [future.result(timeout=120) for future in futures]
    assert statuses == [[302, 200, 403]] * threads
    with app.app_context():
        sealing.seal_all()
        db.session.remove()

    trail = events(app)
    assert len([e for e in trail if e.action == "auth.sign_in"]) == threads
    assert len([e for e in trail if e.action == "access.denied"]) == threads
    assert [e.seq for e in trail] == list(range(1, len(trail) + 1))  # consecutive, no gaps
    assert len({e.previous_hash for e in trail}) == len(trail)  # no fork
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert f"{len(trail)} events verified" in result.output


@pytest.mark.postgres_only
def test_parallel_requests_are_all_sealed_into_one_chain_on_postgres(app, live_server):
    _run_parallel_and_check_chain(app, live_server, threads=24)


def test_parallel_requests_are_all_sealed_into_one_chain(app, live_server):
    """The same on whichever database the suite runs (SQLite queues writers)."""
    _run_parallel_and_check_chain(app, live_server, threads=8)

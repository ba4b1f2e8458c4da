"""User administration: every action works, is audited, and refuses what it must."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.auth.models import ServerSession, User
from portal.extensions import db
from tests.audit.helpers import events
from tests.auth.helpers import (
    add_second_admin,
    choose_own_password,
    give_mfa,
    sign_in_to_gate,
)
from tests.support.clients import PortalClient
from tests.support.database import PASSWORD

NEW_PASSWORD = "lantern orchard velvet 1987"


def user_row(app, username: str) -> User:
    with app.app_context():
        user = db.session.scalars(select(User).where(User.username == username)).one()
        user.roles  # load the roles before detaching  # noqa: B018
        db.session.expunge_all()
        db.session.remove()
    return user


def user_id(app, username: str) -> int:
    return user_row(app, username).id


def live_sessions(app, username: str) -> int:
    uid = user_id(app, username)
    with app.app_context():
        count = len(
            db.session.scalars(
                select(ServerSession).where(
                    ServerSession.user_id == uid, ServerSession.ended_at.is_(None)
                )
            ).all()
        )
        db.session.remove()
    return count


@pytest.fixture
def admin(signed_in):
    return signed_in("admin")


def test_list_shows_each_account_with_roles_mfa_status_and_sessions(admin, signed_in):
    signed_in("nurse")  # a second live session to count
    page = admin.get("/admin/users")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    nurse_row = re.search(r"<tr[^>]*>\s*<td><a[^>]*>nurse</a>.*?</tr>", html, re.S).group(0)
    assert "Sam Okafor" in nurse_row
    assert "Nurse / MA" in nurse_row
    assert ">Off<" in nurse_row  # no MFA
    assert "Enabled" in nurse_row
    assert re.search(r'class="text-end">1</td>', nurse_row)
    drlee_row = re.search(r"<tr[^>]*>\s*<td><a[^>]*>drlee</a>.*?</tr>", html, re.S).group(0)
    assert ">On<" in drlee_row
    assert "Never" in drlee_row  # drlee has not signed in


def test_create_user_then_they_can_sign_in_and_it_is_audited(app, admin):
    response = admin.post_form(
        "/admin/users/new",
        {
            "username": "NewNurse",
            "full_name": "Ada Byrne",
            "email": "ada@example.org",
            "roles": ["nurse", "front_desk"],
            "password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    created = user_row(app, "newnurse")
    assert created.full_name == "Ada Byrne"
    assert created.email == "ada@example.org"
    assert created.roles == ["front_desk", "nurse"]
    (event,) = events(app, "user.create")[-1:]
    assert event.username == "admin"
    assert event.object_type == "users" and event.object_id == str(created.id)
    assert event.category == "user accounts"
    assert "front_desk,nurse" in event.detail
    assert created.must_change_password  # the admin chose it: it is temporary
    browser = PortalClient(app)
    assert sign_in_to_gate(browser, "newnurse", NEW_PASSWORD).location == "/auth/new-password"
    assert choose_own_password(browser).location == "/"  # nothing to read: a new account
    assert browser.get("/").status_code == 200


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"username": "nurse"}, "username", "That username is taken."),
        ({"password": "password1234", "confirm_password": "password1234"}, "password", ""),
        ({"roles": []}, "roles", "Choose at least one role."),
        ({"email": "not-an-email"}, "email", "doesn&#39;t look like an email"),
        ({"confirm_password": "something else entirely"}, "confirm_password", "differ"),
        ({"username": "has space"}, "username", "letters, digits"),
    ],
)
def test_create_user_with_bad_input_keeps_what_was_typed(app, admin, changes, field, message):
    data = {
        "username": "typedname",
        "full_name": "Typed Full Name",
        "email": "typed@example.org",
        "roles": ["prescriber"],
        "password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD,
        **changes,
    }
    before = len(events(app, "user.create"))
    response = admin.post_form("/admin/users/new", data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="{field}-error"' in html
    error = re.search(rf'id="{field}-error">(.*?)</div>', html, re.S).group(1)
    assert message in error
    assert 'value="Typed Full Name"' in html
    assert f'value="{data["username"]}"' in html
    if data["roles"]:
        assert re.search(r'value="prescriber" checked', html)
    assert NEW_PASSWORD not in html  # passwords are never sent back
    assert len(events(app, "user.create")) == before
    with app.app_context():
        assert (
            db.session.scalars(select(User).where(User.full_name == "Typed Full Name")).first()
            is None
        )


def test_edit_name_email_and_roles_is_audited(app, admin):
    nurse_id = user_id(app, "nurse")
    response = admin.post_form(
        f"/admin/users/{nurse_id}",
        {
            "full_name": "Samuel Okafor",
            "email": "sam@example.org",
            "roles": ["nurse", "prescriber"],
        },
    )
    assert response.status_code == 302
    nurse = user_row(app, "nurse")
    assert (nurse.full_name, nurse.email, nurse.roles) == (
        "Samuel Okafor",
        "sam@example.org",
        ["nurse", "prescriber"],
    )
    event = events(app, "user.update")[-1]
    assert event.username == "admin" and event.object_id == str(nurse_id)
    assert event.detail == "roles nurse -> nurse,prescriber"


def test_a_prescribers_npi_is_checked_by_its_luhn_digit_and_audited(app, admin):
    drlee_id = user_id(app, "drlee")
    fields = {"full_name": "Dr. Jordan Lee", "roles": ["prescriber"]}
    for wrong, message in (
        ("1234567890", "check digit is wrong"),  # the CMS example with its last digit changed
        ("123456789", "10 digits"),
        ("3234567893", "starts with 1 or 2"),
    ):
        answer = admin.post_form(f"/admin/users/{drlee_id}", {**fields, "npi": wrong})
        assert answer.status_code == 422 and message in answer.get_data(as_text=True)
        assert f'value="{wrong}"' in answer.get_data(as_text=True)
    assert user_row(app, "drlee").npi is None
    # CMS's worked example: 123456789 -> Luhn over 80840123456789 -> check digit 3.
    saved = admin.post_form(f"/admin/users/{drlee_id}", {**fields, "npi": "1234-567 893"})
    assert saved.status_code == 302
    assert user_row(app, "drlee").npi == "1234567893"
    assert events(app, "user.update")[-1].detail.endswith("; NPI set")


def test_edit_with_bad_input_keeps_what_was_typed(app, admin):
    nurse_id = user_id(app, "nurse")
    response = admin.post_form(
        f"/admin/users/{nurse_id}", {"full_name": "Half Typed", "email": "nope", "roles": ["nurse"]}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'value="Half Typed"' in html and 'value="nope"' in html
    assert 'id="email-error"' in html
    assert user_row(app, "nurse").full_name == "Sam Okafor"


def test_admin_cannot_drop_their_own_admin_role(app, admin):
    admin_id = user_id(app, "admin")
    before = len(events(app))
    response = admin.post_form(
        f"/admin/users/{admin_id}", {"full_name": "Pat Kim", "roles": ["nurse"]}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "remove your own admin role" in html
    assert re.search(r'value="nurse" checked', html)  # what was ticked is kept
    assert user_row(app, "admin").roles == ["admin"]
    assert not [e for e in events(app)[before:] if e.action == "user.update"]


def test_disable_asks_first_then_ends_sessions_and_is_audited(app, admin, signed_in):
    nurse_browser = signed_in("nurse")
    nurse_id = user_id(app, "nurse")
    question = admin.get(f"/admin/users/{nurse_id}/disable")
    assert question.status_code == 200
    html = question.get_data(as_text=True)
    assert "Disable Sam Okafor?" in html
    assert re.search(r'<form method="post" action="/admin/users/\d+/disable"', html)
    assert "<script" not in html.split("<main", 1)[1]  # works without JavaScript
    assert user_row(app, "nurse").is_enabled  # asking changes nothing

    response = admin.post_form(f"/admin/users/{nurse_id}/disable")
    assert response.status_code == 302
    assert not user_row(app, "nurse").is_enabled
    assert live_sessions(app, "nurse") == 0
    assert nurse_browser.get("/").status_code == 302  # signed out
    event = events(app, "user.disable")[-1]
    assert event.username == "admin" and event.object_id == str(nurse_id)
    assert event.category == "user accounts"
    # A disabled account cannot sign in.
    refused = PortalClient(app)
    refused.refresh_csrf()
    answer = refused.post_form("/auth/sign-in", {"username": "nurse", "password": PASSWORD})
    assert answer.status_code == 401

    response = admin.post_form(f"/admin/users/{nurse_id}/enable")
    assert response.status_code == 302
    assert user_row(app, "nurse").is_enabled
    assert events(app, "user.enable")[-1].object_id == str(nurse_id)
    PortalClient(app).sign_in("nurse")


def test_admin_cannot_disable_themselves(app, admin):
    admin_id = user_id(app, "admin")
    page = admin.get(f"/admin/users/{admin_id}").get_data(as_text=True)
    assert "Disable account" not in page
    response = admin.post_form(f"/admin/users/{admin_id}/disable")
    assert response.status_code == 409
    assert "disable your own account" in response.get_data(as_text=True)
    assert user_row(app, "admin").is_enabled
    assert events(app, "user.disable") == []


def test_reset_password_replaces_it_and_is_audited(app, admin, signed_in):
    # A nurse with two-step sign-in on: one administrator sets a temporary password.
    give_mfa(app, "nurse")
    nurse_browser = signed_in("nurse")
    nurse_id = user_id(app, "nurse")
    weak = admin.post_form(
        f"/admin/users/{nurse_id}/password",
        {"password": "short", "confirm_password": "short"},
    )
    assert weak.status_code == 422
    assert 'id="password-error"' in weak.get_data(as_text=True)

    response = admin.post_form(
        f"/admin/users/{nurse_id}/password",
        {"password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert nurse_browser.get("/").status_code == 302  # their sessions ended
    event = events(app, "user.password_reset")[-1]
    assert event.username == "admin" and event.object_id == str(nurse_id)
    assert NEW_PASSWORD not in (event.detail or "")
    assert event.detail == "temporary"
    assert user_row(app, "nurse").must_change_password


def test_a_nurses_password_without_a_second_factor_takes_two_admins(app, admin, signed_in):
    add_second_admin(app)
    nurse_id = user_id(app, "nurse")
    url = f"/admin/users/{nurse_id}/password"
    page = admin.get(url).get_data(as_text=True)
    assert "It takes two administrators" in page and "Propose the password reset" in page
    # Setting a password directly is refused: nothing changes.
    direct = admin.post_form(url, {"password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert direct.status_code == 422
    assert "No password reset is waiting" in direct.get_data(as_text=True)
    assert not user_row(app, "nurse").must_change_password
    proposed = admin.post_form(url, {"step": "propose"})
    assert proposed.status_code == 302
    assert "Password reset for" in admin.get("/admin/users").get_data(as_text=True)
    assert "Withdraw the proposal" in admin.get(url).get_data(as_text=True)
    assert (
        admin.post_form(
            url, {"password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
        ).status_code
        == 422
    )
    # The second administrator approves by setting the temporary password.
    second = signed_in("admin2")
    assert "Approve and set the temporary password" in second.get(url).get_data(as_text=True)
    approved = second.post_form(url, {"password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert approved.status_code == 302
    assert events(app, "user.password_reset")[-1].username == "admin2"
    browser = PortalClient(app)
    assert sign_in_to_gate(browser, "nurse", NEW_PASSWORD).location == "/auth/new-password"


def test_a_proposed_password_reset_can_be_withdrawn(app, admin):
    add_second_admin(app)
    url = f"/admin/users/{user_id(app, 'nurse')}/password"
    admin.post_form(url, {"step": "propose"})
    withdrawn = admin.post_form(url, {"step": "withdraw"})
    assert withdrawn.status_code == 302
    assert "Propose the password reset" in admin.get(url).get_data(as_text=True)
    assert events(app, "user.password_reset_withdrawn")[-1].username == "admin"


def test_reset_mfa_of_an_enrolled_nurse_takes_two_admins(app, admin, signed_in):
    # An enrolled second factor is reset only by two administrators, whatever the roles.
    give_mfa(app, "nurse")
    add_second_admin(app)
    nurse_id = user_id(app, "nurse")
    assert "Propose resetting two-step sign-in for Sam Okafor?" in admin.get(
        f"/admin/users/{nurse_id}/reset-mfa"
    ).get_data(as_text=True)
    response = admin.post_form(f"/admin/users/{nurse_id}/reset-mfa")
    assert response.status_code == 302
    assert user_row(app, "nurse").mfa_enabled  # only proposed
    approved = signed_in("admin2").post_form(f"/admin/users/{nurse_id}/mfa-reset/approve")
    assert approved.status_code == 302
    nurse = user_row(app, "nurse")
    assert not nurse.mfa_enabled and nurse.totp_secret_encrypted is None
    assert events(app, "user.mfa_reset")[-1].object_id == str(nurse_id)
    # The password alone signs her in now, and she is told first who reset it.
    browser = PortalClient(app)
    assert sign_in_to_gate(browser, "nurse", PASSWORD).location == "/auth/notices"


def test_end_sessions_signs_the_user_out_everywhere(app, admin, signed_in):
    first = signed_in("frontdesk", through_the_form=True)
    second = signed_in("frontdesk", through_the_form=True)
    frontdesk_id = user_id(app, "frontdesk")
    assert live_sessions(app, "frontdesk") == 2
    response = admin.post_form(f"/admin/users/{frontdesk_id}/end-sessions")
    assert response.status_code == 302
    assert live_sessions(app, "frontdesk") == 0
    assert first.get("/").status_code == 302 and second.get("/").status_code == 302
    event = events(app, "user.sessions_ended")[-1]
    assert event.object_id == str(frontdesk_id) and event.detail == "2 session(s)"
    assert "Ended 2 session(s) of frontdesk." in admin.get(f"/admin/users/{frontdesk_id}").get_data(
        as_text=True
    )


def test_confirmations_refuse_a_post_without_the_csrf_token(app, admin):
    nurse_id = user_id(app, "nurse")
    response = admin.client.post(f"/admin/users/{nurse_id}/disable", data={})
    assert response.status_code == 400
    assert user_row(app, "nurse").is_enabled


def test_unknown_user_is_404(admin):
    assert admin.get("/admin/users/999999").status_code == 404
    assert admin.get("/admin/users/999999/disable").status_code == 404


ADMIN_USER_PAGES = [
    ("GET", "/admin/users"),
    ("GET", "/admin/users/new"),
    ("POST", "/admin/users/new"),
    ("GET", "/admin/users/{id}"),
    ("POST", "/admin/users/{id}"),
    ("GET", "/admin/users/{id}/password"),
    ("POST", "/admin/users/{id}/password"),
    ("GET", "/admin/users/{id}/disable"),
    ("POST", "/admin/users/{id}/disable"),
    ("POST", "/admin/users/{id}/enable"),
    ("GET", "/admin/users/{id}/reset-mfa"),
    ("POST", "/admin/users/{id}/reset-mfa"),
    ("GET", "/admin/users/{id}/end-sessions"),
    ("POST", "/admin/users/{id}/end-sessions"),
]


@pytest.mark.parametrize("role", ["front_desk", "nurse", "prescriber"])
def test_other_roles_get_403_on_every_user_admin_page(app, signed_in, role):
    browser = signed_in(role)
    target = user_id(app, "drlee")
    for method, path in ADMIN_USER_PAGES:
        url = path.format(id=target)
        if method == "GET":
            response = browser.get(url)
        else:
            response = browser.post_form(url, {"full_name": "X", "roles": ["admin"]})
        assert response.status_code == 403, (method, url)
    drlee = user_row(app, "drlee")
    assert drlee.is_enabled and drlee.mfa_enabled and drlee.roles == ["prescriber"]
    assert events(app, "user.update") == []

"""What an administrator (who has no patient access) can do to someone else's account, and
what stops that from becoming a way into patients' records (issue 14, security finding 2):

- a password an admin sets is temporary: its owner must choose their own at the next
  sign-in before reaching anything else, and the admin's one stops working;
- a prescriber's or admin's second factor is reset only when a second admin approves what a
  first one proposed (each act audited);
- the owner is shown, and acknowledges, what was done to their account at their next sign-in.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.auth import services
from portal.auth.models import AccountApproval, AccountNotice
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import Refused
from tests.auth.helpers import (
    OWN_PASSWORD,
    add_second_admin,
    choose_own_password,
    create_user,
    field_error,
    get_user,
    give_mfa,
    page_text,
    password_step,
    reset_password_by_two_admins,
    sign_in_to_gate,
)
from tests.support.audit import audit_events
from tests.support.clients import PortalClient, actor_of, fresh_totp

TEMPORARY = "violet tugboat saffron 2211"


def act(app, username: str, action):
    """Run ``action(actor, find_user)`` as ``username`` would from the admin pages."""
    with app.test_request_context():
        try:
            return action(actor_of(username), services.find_user)
        finally:
            db.session.remove()


def reset_password_of(app, username: str, password: str = TEMPORARY, by: str = "admin"):
    """``by`` sets a temporary password; for an account with no second
    factor another administrator ("admin2") proposed it first (the two-person rule)."""
    needs_approval = act(
        app, by, lambda actor, find: services.password_reset_needs_approval(actor, find(username))
    )
    if needs_approval:
        reset_password_by_two_admins(app, username, password, approver=by)
        return
    act(
        app,
        by,
        lambda actor, find: services.reset_password(
            actor=actor, user=find(username), new_password=password
        ),
    )


# --- a temporary password ------------------------------------------------------------------


def test_after_a_reset_nothing_opens_until_the_owner_chooses_a_password(app):
    reset_password_of(app, "nurse")
    assert get_user(app, "nurse").must_change_password
    browser = PortalClient(app)
    assert sign_in_to_gate(browser, "nurse", TEMPORARY).location == "/auth/new-password"
    # Every other page (a patient search, the schedule, an htmx fragment) leads back there.
    for path in ("/", "/schedule/", "/schedule/day", "/auth/account", "/admin/users"):
        response = browser.get(path)
        assert response.status_code == 302 and response.location == "/auth/new-password", path
    fragment = browser.get("/schedule/", headers={"HX-Request": "true"})
    assert fragment.headers["HX-Redirect"] == "/auth/new-password"
    searched = browser.post_form("/patients/search", {"q": "Lovelace"})
    assert searched.location == "/auth/new-password"
    page = browser.get("/auth/new-password")
    assert page.status_code == 200
    assert "Choose your own password" in page_text(page)


def test_the_temporary_password_cannot_be_kept(app):
    reset_password_of(app, "nurse")
    browser = PortalClient(app)
    sign_in_to_gate(browser, "nurse", TEMPORARY)
    response = choose_own_password(browser, TEMPORARY)
    assert response.status_code == 422
    assert "not the temporary one" in field_error(response, "new_password")
    assert get_user(app, "nurse").must_change_password
    weak = choose_own_password(browser, "password1234")
    assert weak.status_code == 422 and field_error(weak, "new_password")
    mismatched = browser.post_form(
        "/auth/new-password", {"new_password": OWN_PASSWORD, "confirm_password": "other"}
    )
    assert mismatched.status_code == 422
    assert "differ" in field_error(mismatched, "confirm_password")


def test_the_owners_password_replaces_the_admins_and_they_are_told(app):
    reset_password_of(app, "nurse")
    browser = PortalClient(app)
    sign_in_to_gate(browser, "nurse", TEMPORARY)
    chosen = choose_own_password(browser)
    assert chosen.status_code == 302 and chosen.location == "/auth/notices"
    assert browser.get("/").location == "/auth/notices"  # still held: the notice comes first
    notices = page_text(browser.get("/auth/notices"))
    assert "Password reset" in notices and "by Pat Kim" in notices
    acknowledged = browser.post_form(
        "/auth/notices", {"notice_id": _unread_ids(app, "nurse")}, follow_redirects=False
    )
    assert acknowledged.status_code == 302 and acknowledged.location == "/"
    assert browser.get("/").status_code == 200
    user = get_user(app, "nurse")
    assert not user.must_change_password
    # The admin's password no longer opens the account; the owner's does, with no gate.
    assert password_step(PortalClient(app), "nurse", TEMPORARY).status_code == 401
    again = PortalClient(app)
    assert password_step(again, "nurse", OWN_PASSWORD).location == "/"
    [changed] = audit_events(app, "auth.password_changed")
    assert changed.username == "nurse" and changed.detail == "replaced a temporary password"
    [read] = audit_events(app, "auth.notices_acknowledged")
    assert read.username == "nurse" and read.detail == "1 notice(s)"


def test_an_admin_resetting_their_own_password_is_not_held(app):
    reset_password_of(app, "admin", by="admin")
    assert not get_user(app, "admin").must_change_password
    with app.app_context():
        assert db.session.scalars(select(AccountNotice)).all() == []


def test_acknowledging_covers_only_the_notices_shown(app):
    """A notice written after the page was drawn is not acknowledged unseen."""
    reset_password_of(app, "frontdesk")
    browser = PortalClient(app)
    sign_in_to_gate(browser, "frontdesk", TEMPORARY)
    choose_own_password(browser)
    shown = _unread_ids(app, "frontdesk")
    give_mfa(app, "frontdesk")
    act(app, "admin2", lambda a, find: services.propose_mfa_reset(actor=a, user=find("frontdesk")))
    act(app, "admin", lambda a, find: services.approve_mfa_reset(actor=a, user=find("frontdesk")))
    # The reset ended the session; sign in again: both notices wait.
    browser = PortalClient(app)
    assert sign_in_to_gate(browser, "frontdesk", OWN_PASSWORD).location == "/auth/notices"
    response = browser.post_form("/auth/notices", {"notice_id": shown})
    assert response.status_code == 200  # the newer one is still shown
    assert "Two-step sign-in reset" in page_text(response)
    assert len(_unread_ids(app, "frontdesk")) == 1


def _unread_ids(app, username: str) -> list[str]:
    with app.app_context():
        user = services.find_user(username)
        return [str(notice.id) for notice in services.unread_notices(user.id)]


# --- the two-person rule for second factors ------------------------------------------------


def test_a_prescribers_second_factor_needs_two_admins(app, signed_in):
    add_second_admin(app)
    drlee_id = get_user(app, "drlee").id
    admin = signed_in("admin")
    question = page_text(admin.get(f"/admin/users/{drlee_id}/reset-mfa"))
    assert "Propose resetting two-step sign-in for Jordan Lee?" in question
    assert admin.post_form(f"/admin/users/{drlee_id}/reset-mfa").status_code == 302
    assert get_user(app, "drlee").mfa_enabled  # nothing changed yet
    page = page_text(admin.get(f"/admin/users/{drlee_id}"))
    assert "waiting for approval" in page
    assert "Approve the reset" not in page  # not to the admin who proposed it
    # The proposer cannot approve it, even by posting directly.
    refused = admin.post_form(f"/admin/users/{drlee_id}/mfa-reset/approve")
    assert refused.status_code == 409
    assert "A different administrator must approve" in page_text(refused)
    assert get_user(app, "drlee").mfa_enabled

    second = signed_in("admin2")
    # The second admin finds it on the users' list, where they start.
    listed = page_text(second.get("/admin/users"))
    assert "Waiting for a second administrator" in listed
    assert "Reset of two-step sign-in for" in listed and "proposed by Pat Kim" in listed
    assert "Approve the reset" in page_text(second.get(f"/admin/users/{drlee_id}"))
    assert second.post_form(f"/admin/users/{drlee_id}/mfa-reset/approve").status_code == 302
    assert "Waiting for a second administrator" not in page_text(second.get("/admin/users"))
    drlee = get_user(app, "drlee")
    assert not drlee.mfa_enabled and drlee.totp_secret_encrypted is None
    [proposed] = audit_events(app, "user.mfa_reset_proposed")
    [approved] = audit_events(app, "user.mfa_reset_approved")
    [reset] = audit_events(app, "user.mfa_reset")
    assert proposed.username == "admin" and proposed.object_id == str(drlee_id)
    assert approved.username == "admin2" and reset.username == "admin2"
    with app.app_context():
        [approval] = db.session.scalars(select(AccountApproval)).all()
        assert approval.outcome == "approved"
        [notice] = db.session.scalars(select(AccountNotice)).all()
        assert notice.kind == "mfa_reset" and notice.actor_name == "Robin Shaw"


def test_the_one_admin_path_refuses_a_prescriber_or_an_admin(app):
    add_second_admin(app)
    give_mfa(app, "admin2")
    for username in ("drlee", "admin2"):
        with pytest.raises(Refused, match="second administrator"):
            act(app, "admin", lambda a, find, u=username: services.reset_mfa(actor=a, user=find(u)))
        assert get_user(app, username).mfa_enabled
    assert audit_events(app, "user.mfa_reset") == []


def test_nobody_approves_a_reset_of_their_own_account(app):
    add_second_admin(app)
    give_mfa(app, "admin2")
    act(app, "admin", lambda a, find: services.propose_mfa_reset(actor=a, user=find("admin2")))
    with pytest.raises(Refused, match="your own account"):
        act(app, "admin2", lambda a, find: services.approve_mfa_reset(actor=a, user=find("admin2")))
    assert get_user(app, "admin2").mfa_enabled


def test_one_proposal_at_a_time_and_it_can_be_withdrawn(app, signed_in):
    add_second_admin(app)
    drlee_id = get_user(app, "drlee").id
    act(app, "admin", lambda a, find: services.propose_mfa_reset(actor=a, user=find("drlee")))
    second = signed_in("admin2")
    again = second.post_form(f"/admin/users/{drlee_id}/reset-mfa")
    assert again.status_code == 409
    assert "already waiting for approval" in page_text(again)
    assert second.post_form(f"/admin/users/{drlee_id}/mfa-reset/withdraw").status_code == 302
    assert second.post_form(f"/admin/users/{drlee_id}/mfa-reset/approve").status_code == 409
    assert get_user(app, "drlee").mfa_enabled
    [withdrawn] = audit_events(app, "user.mfa_reset_withdrawn")
    assert withdrawn.username == "admin2"


def test_a_proposal_lapses_after_a_day(app):
    add_second_admin(app)
    act(app, "admin", lambda a, find: services.propose_mfa_reset(actor=a, user=find("drlee")))
    with app.app_context():
        approval = db.session.scalars(select(AccountApproval)).one()
        approval.proposed_at -= timedelta(hours=services.APPROVAL_VALID_HOURS, minutes=1)
        db.session.commit()
    with pytest.raises(Refused, match="lapsed"):
        act(app, "admin2", lambda a, find: services.approve_mfa_reset(actor=a, user=find("drlee")))
    assert get_user(app, "drlee").mfa_enabled
    # A fresh proposal can be made (the lapsed one is closed).
    act(app, "admin", lambda a, find: services.propose_mfa_reset(actor=a, user=find("drlee")))
    with app.app_context():
        outcomes = sorted(str(a.outcome) for a in db.session.scalars(select(AccountApproval)))
        assert outcomes == ["None", "lapsed"]


def test_an_admin_alone_cannot_take_over_a_prescriber(app):
    """The whole path the security review took: reset the password, sign in as them. The
    prescriber's second factor stops it, and resetting that needs a second admin."""
    reset_password_of(app, "drlee")
    browser = PortalClient(app)
    response = password_step(browser, "drlee", TEMPORARY)
    assert response.location == "/auth/second-factor"  # the admin has no code
    with pytest.raises(Refused):
        act(app, "admin", lambda a, find: services.reset_mfa(actor=a, user=find("drlee")))
    assert get_user(app, "drlee").mfa_enabled


def test_the_owner_still_signs_in_with_their_code_after_a_reset(app, signed_in):
    """The owner's own path after an admin reset: password, their code, a new password."""
    reset_password_of(app, "drlee")
    browser = PortalClient(app)
    browser.refresh_csrf()
    step = browser.post_form("/auth/sign-in", {"username": "drlee", "password": TEMPORARY})
    assert step.location == "/auth/second-factor"
    done = browser.post_form("/auth/second-factor", {"code": fresh_totp(app, "drlee")})
    assert done.location == "/auth/new-password"
    browser.refresh_csrf("/auth/new-password")
    assert choose_own_password(browser).location == "/auth/notices"


def test_removing_the_role_does_not_open_the_one_admin_reset(app):
    """Route the review found: remove a prescriber's role, reset their second factor alone,
    give the role back. An enrolled second factor needs two admins whatever the roles."""
    act(
        app,
        "admin",
        lambda a, find: services.update_user(
            actor=a, user=find("drlee"), full_name="Dr Lee", email=None, roles=["nurse"]
        ),
    )
    assert get_user(app, "drlee").roles == ["nurse"]
    with pytest.raises(Refused, match="second administrator"):
        act(app, "admin", lambda a, find: services.reset_mfa(actor=a, user=find("drlee")))
    assert get_user(app, "drlee").mfa_enabled
    assert audit_events(app, "user.mfa_reset") == []


def test_an_admin_account_the_proposer_made_does_not_approve(app):
    """Route the review found: admin A makes a second admin account, signs in as it and
    approves their own proposal. Its role is new and was A's grant: refused, in either seat;
    after a day, an admin made by someone else approves."""
    create_user(app, "puppet", "Sock Puppet", ["admin"])
    act(app, "admin", lambda a, find: services.propose_mfa_reset(actor=a, user=find("drlee")))
    with pytest.raises(Refused, match="less than a day old"):
        act(app, "puppet", lambda a, find: services.approve_mfa_reset(actor=a, user=find("drlee")))
    _age_admin_role(app, "puppet", hours=48)
    with pytest.raises(Refused, match="given by the administrator who proposed"):
        act(app, "puppet", lambda a, find: services.approve_mfa_reset(actor=a, user=find("drlee")))
    # The other seat: the made account proposes, its maker approves.
    act(app, "admin", lambda a, find: services.withdraw_mfa_reset(actor=a, user=find("drlee")))
    act(app, "puppet", lambda a, find: services.propose_mfa_reset(actor=a, user=find("drlee")))
    with pytest.raises(Refused, match="You gave the proposer"):
        act(app, "admin", lambda a, find: services.approve_mfa_reset(actor=a, user=find("drlee")))
    assert get_user(app, "drlee").mfa_enabled
    # The same for a password reset.
    act(app, "puppet", lambda a, find: services.propose_password_reset(actor=a, user=find("nurse")))
    with pytest.raises(Refused, match="You gave the proposer"):
        act(
            app,
            "admin",
            lambda a, find: services.approve_password_reset(
                actor=a, user=find("nurse"), new_password=TEMPORARY
            ),
        )
    assert not get_user(app, "nurse").must_change_password
    # An administrator someone else made, a day ago, approves.
    add_second_admin(app)
    act(app, "admin2", lambda a, find: services.approve_mfa_reset(actor=a, user=find("drlee")))
    assert not get_user(app, "drlee").mfa_enabled


def _age_admin_role(app, username: str, hours: int) -> None:
    with app.app_context():
        row = services.find_user(username).role_row("admin")
        row.granted_at = utcnow() - timedelta(hours=hours)
        db.session.commit()


# --- the two-person rule for passwords of accounts with no second factor


def test_one_admin_alone_cannot_reset_a_nurses_password(app):
    """The nurse has no second factor: a temporary password alone would let the admin in."""
    add_second_admin(app)
    before = get_user(app, "nurse").password_hash
    with pytest.raises(Refused, match="second administrator"):
        reset_password_of_directly(app, "nurse")
    act(app, "admin", lambda a, find: services.propose_password_reset(actor=a, user=find("nurse")))
    assert get_user(app, "nurse").password_hash == before  # a proposal changes nothing
    with pytest.raises(Refused, match="different administrator"):
        act(
            app,
            "admin",
            lambda a, find: services.approve_password_reset(
                actor=a, user=find("nurse"), new_password=TEMPORARY
            ),
        )
    assert get_user(app, "nurse").password_hash == before
    act(
        app,
        "admin2",
        lambda a, find: services.approve_password_reset(
            actor=a, user=find("nurse"), new_password=TEMPORARY
        ),
    )
    nurse = get_user(app, "nurse")
    assert nurse.password_hash != before and nurse.must_change_password
    [proposed] = audit_events(app, "user.password_reset_proposed")
    [approved] = audit_events(app, "user.password_reset_approved")
    [reset] = audit_events(app, "user.password_reset")
    assert proposed.username == "admin" and approved.username == reset.username == "admin2"
    with app.app_context():
        [notice] = services.unread_notices(nurse.id)
        assert notice.kind == "password_reset" and notice.actor_name == "Robin Shaw"
    # Nothing is left waiting: approving again finds no proposal.
    with pytest.raises(Refused, match="No password reset"):
        act(
            app,
            "admin2",
            lambda a, find: services.approve_password_reset(
                actor=a, user=find("nurse"), new_password=TEMPORARY
            ),
        )


def test_a_second_factor_keeps_the_one_admin_password_reset(app):
    """With a second factor enrolled the admin cannot pass the owner's code: one admin
    sets the temporary password (a nurse's or another admin's)."""
    give_mfa(app, "nurse")
    reset_password_of_directly(app, "nurse")
    assert get_user(app, "nurse").must_change_password
    add_second_admin(app)
    give_mfa(app, "admin2")
    reset_password_of_directly(app, "admin2")
    assert get_user(app, "admin2").must_change_password


def test_an_admin_account_without_a_second_factor_takes_two_admins(app):
    """Else one admin could reset a not yet enrolled admin's password, sign in as them,
    enrol their own authenticator and approve their own proposals with that account."""
    add_second_admin(app)
    with pytest.raises(Refused, match="second administrator"):
        reset_password_of_directly(app, "admin2")
    assert not get_user(app, "admin2").must_change_password


def reset_password_of_directly(app, username: str) -> None:
    act(
        app,
        "admin",
        lambda a, find: services.reset_password(
            actor=a, user=find(username), new_password=TEMPORARY
        ),
    )


# --- an admin giving themselves patient access ------------------------------------------------


def test_an_admin_cannot_give_themselves_a_clinical_role(app, signed_in):
    add_second_admin(app)
    admin = signed_in("admin")
    admin_id = get_user(app, "admin").id
    response = admin.post_form(
        f"/admin/users/{admin_id}", {"full_name": "Pat Kim", "roles": ["admin", "prescriber"]}
    )
    assert response.status_code == 422
    assert "Another administrator must give you a new role" in page_text(response)
    assert get_user(app, "admin").roles == ["admin"]
    # A second administrator may (the grant is audited as theirs).
    second = signed_in("admin2")
    granted = second.post_form(
        f"/admin/users/{admin_id}", {"full_name": "Pat Kim", "roles": ["admin", "prescriber"]}
    )
    assert granted.status_code == 302
    assert get_user(app, "admin").roles == ["admin", "prescriber"]
    [update] = audit_events(app, "user.update")
    assert update.username == "admin2" and "-> admin,prescriber" in update.detail


def test_the_owner_sees_a_sign_in_they_did_not_make(app):
    """Someone who knew a temporary password and used it before the owner is seen by the
    owner: the notices page lists the account's latest sign-ins, with their addresses."""
    reset_password_of(app, "nurse")
    intruder = PortalClient(app)
    intruder.refresh_csrf()
    step = intruder.post_form(
        "/auth/sign-in",
        {"username": "nurse", "password": TEMPORARY},
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert step.location == "/auth/new-password"
    intruder.refresh_csrf("/auth/new-password")
    choose_own_password(intruder, "intruder picks these words 77")
    intruder.post_form("/auth/notices", {"notice_id": _unread_ids(app, "nurse")})
    # The nurse cannot sign in; the admin resets her password again; she signs in.
    reset_password_of(app, "nurse", "second temporary words 5150")
    owner = PortalClient(app)
    sign_in_to_gate(owner, "nurse", "second temporary words 5150")
    assert choose_own_password(owner).location == "/auth/notices"
    page = page_text(owner.get("/auth/notices"))
    assert "Latest sign-ins to your account" in page
    assert "10.9.8.7" in page and "127.0.0.1" in page

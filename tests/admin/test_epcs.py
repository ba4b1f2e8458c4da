"""EPCS logical access control (21 CFR 1311.125) and the signing factors (1311.115): the DEA
number's form, who may propose and approve a grant or a revoke, what each step asks for and
records, ``may_sign_controlled`` and ``confirm_signing_factors``."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from portal.auth import dea, epcs, services
from portal.auth.models import AccountApproval, EpcsPermission, User
from portal.auth.signing import confirm_signing_factors
from portal.demo.clinic import seed_clinic_and_users
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import Refused
from tests.admin.epcs_helpers import (
    DRLEE_DEA,
    DRPARK_DEA,
    SECRETS,
    WRONG_CHECK_DIGIT,
    act,
    add_registrant,
    approve_as,
    fresh_code,
    get,
    give_drlee_dea,
    grant_drlee,
    propose_as,
    run_together,
    set_user,
)
from tests.auth.helpers import add_second_admin, field_error, give_mfa
from tests.support.audit import audit_events
from tests.support.database import PASSWORD, migrated_app

# --- the DEA number ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "name"),
    [
        ("BL1234563", "Jordan Lee"),  # 1+3+5 + 2*(2+4+6) = 33
        ("bl 123456-3", "Jordan Lee"),  # typed with spaces, a dash, lower case
        ("FP2345672", "Ana Park"),  # 2+4+6 + 2*(3+5+7) = 42
        ("M91111119", "Ana Park"),  # a business name (9): 1+1+1 + 2*(1+1+1) = 9
    ],
)
def test_a_valid_dea_number_is_accepted_as_stored(number, name):
    checked = dea.check_dea_number(number, name)
    assert checked.number == dea.normalise(number)
    assert checked.warnings == ()


def test_the_check_digit_is_the_last_digit_of_the_weighted_sum():
    assert dea.check_digit("123456") == 3
    assert dea.check_digit("234567") == (2 + 4 + 6 + 2 * (3 + 5 + 7)) % 10
    assert dea.check_digit("000000") == 0
    assert dea.check_digit("999999") == (27 + 54) % 10


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (WRONG_CHECK_DIGIT, "check digit"),
        ("BL123456", "two letters and seven digits"),
        ("BL12345634", "two letters and seven digits"),
        ("1L1234563", "two letters and seven digits"),
        ("B11234563", "two letters and seven digits"),  # second: a letter or 9
        ("QL1234563", "do not start with Q"),
        ("IL1234563", "do not start with I"),
        ("", "two letters and seven digits"),
    ],
)
def test_an_invalid_dea_number_is_refused_with_the_reason(number, message):
    with pytest.raises(dea.InvalidDeaNumber, match=message):
        dea.check_dea_number(number, "Jordan Lee")


def test_a_second_letter_other_than_the_last_name_initial_warns_but_is_accepted():
    checked = dea.check_dea_number("BK1234563", "Jordan Lee")
    assert checked.number == "BK1234563"
    assert any("initial of the registrant's last name (L)" in w for w in checked.warnings)
    # A manufacturer's letter on a prescriber: warned, not refused.
    assert any(
        "not usually a prescriber" in w for w in dea.check_dea_number("EL1234563", "Lee").warnings
    )


def test_masked_shows_the_last_four_only():
    assert dea.masked("BL1234563") == "•••••4563"
    assert dea.masked(None) == ""


def test_setting_a_dea_number_is_audited_and_refused_for_ones_own_account(app):
    give_drlee_dea(app)
    assert get(app, "drlee").dea_number == DRLEE_DEA
    event = audit_events(app, "user.dea_number_set")[-1]
    assert event.username == "admin" and event.detail == "recorded •••••4563"
    assert DRLEE_DEA not in (event.detail or "")
    with pytest.raises(Refused, match="Another administrator records your own"):
        act(
            app,
            "admin",
            lambda a, find: epcs.set_dea_number(actor=a, user=find("admin"), number=DRLEE_DEA),
        )
    with pytest.raises(Refused, match="check digit"):
        act(
            app,
            "admin",
            lambda a, find: epcs.set_dea_number(
                actor=a, user=find("drlee"), number=WRONG_CHECK_DIGIT
            ),
        )
    assert get(app, "drlee").dea_number == DRLEE_DEA


# --- proposing and approving -------------------------------------------------------------------


def test_grant_by_an_admin_and_a_registrant_lets_the_prescriber_sign_controlled(app):
    give_drlee_dea(app)
    add_registrant(app)
    with app.app_context():
        drlee_id = get(app, "drlee").id
        assert not epcs.may_sign_controlled(drlee_id)
    propose_as(app, "admin", "drlee", "grant")
    with app.app_context():
        assert not epcs.may_sign_controlled(drlee_id)  # only proposed
    approve_as(app, "drpark", "drlee", "grant")
    with app.app_context():
        assert epcs.may_sign_controlled(drlee_id)
        permission = db.session.scalars(select(EpcsPermission)).one()
        assert permission.dea_number == DRLEE_DEA
        assert permission.proposed_by_id == get(app, "admin").id
        assert permission.approved_by_id == get(app, "drpark").id
    actions = [
        e.action for e in audit_events(app) if e.action.startswith(("epcs.", "auth.factors"))
    ]
    assert actions == [
        "auth.factors_confirmed",  # the admin's code
        "epcs.grant_proposed",
        "auth.factors_confirmed",  # the registrant's password and code
        "epcs.grant_approved",
        "epcs.granted",
    ]
    confirmed = audit_events(app, "auth.factors_confirmed")
    assert confirmed[0].username == "admin" and confirmed[0].detail == "EPCS grant proposal; code"
    assert confirmed[1].username == "drpark"
    assert confirmed[1].detail == "EPCS grant approval; password and code"


def test_the_proposer_cannot_approve_even_as_a_registrant(app):
    give_drlee_dea(app)
    add_registrant(app)
    # drpark is also an administrator here: proposes, then tries to approve.
    with app.app_context():
        user = db.session.scalars(select(User).filter_by(username="drpark")).one()
        user.set_roles(["admin", "prescriber"])
        db.session.commit()
        db.session.remove()
    propose_as(app, "drpark", "drlee", "grant")
    with pytest.raises(Refused, match="A different person must approve"):
        approve_as(app, "drpark", "drlee", "grant")


def test_a_second_approval_is_refused(app):
    grant_drlee(app)
    with pytest.raises(Refused, match="No grant of EPCS signing is waiting"):
        approve_as(app, "drpark", "drlee", "grant")
    with app.app_context():
        assert db.session.query(EpcsPermission).count() == 1


def test_the_prescriber_cannot_approve_their_own_grant(app):
    give_drlee_dea(app)
    add_registrant(app)
    # drlee's own DEA number is older than a day and set by someone other than the proposer.
    set_user(
        app, "drlee", dea_number_set_by_id=None, dea_number_set_at=utcnow() - timedelta(days=2)
    )
    propose_as(app, "admin", "drlee", "grant")
    with pytest.raises(
        Refused, match="Another person must approve a grant of EPCS signing of your own"
    ):
        approve_as(app, "drlee", "drlee", "grant")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dea_number": None}, "DEA registrant"),
        ({"mfa_enabled": False}, "two-step sign-in"),
        ({"is_enabled": False}, "not enabled"),
        ({"dea_number_set_at": "now"}, "less than a day ago"),
        ({"dea_number_set_by_id": "admin"}, "by the administrator who proposed"),
    ],
)
def test_only_an_independent_dea_registrant_approves(app, change, message):
    give_drlee_dea(app)
    add_registrant(app)
    propose_as(app, "admin", "drlee", "grant")
    values = dict(change)
    if values.get("dea_number_set_at") == "now":
        values["dea_number_set_at"] = utcnow()
    if values.get("dea_number_set_by_id") == "admin":
        values["dea_number_set_by_id"] = get(app, "admin").id
    set_user(app, "drpark", **values)
    with pytest.raises(Refused, match=message):
        approve_as(app, "drpark", "drlee", "grant")
    with app.app_context():
        assert not epcs.may_sign_controlled(get(app, "drlee").id)


def test_an_administrator_without_a_dea_number_does_not_approve(app):
    give_drlee_dea(app)
    add_second_admin(app)
    give_mfa(app, "admin2")
    propose_as(app, "admin", "drlee", "grant")
    with pytest.raises(Refused, match="DEA registrant"):
        approve_as(app, "admin2", "drlee", "grant")


def test_a_registrant_whose_prescriber_role_the_proposer_gave_recently_does_not_approve(app):
    give_drlee_dea(app)
    add_registrant(app)
    with app.app_context():
        user = db.session.scalars(select(User).filter_by(username="drpark")).one()
        row = user.role_row("prescriber")
        row.granted_by_id = get(app, "admin").id
        row.granted_at = utcnow()
        db.session.commit()
        db.session.remove()
    propose_as(app, "admin", "drlee", "grant")
    with pytest.raises(Refused, match="less than a day old or was given by the administrator"):
        approve_as(app, "drpark", "drlee", "grant")
    # Refused before the registrant's code was asked for: it is still theirs to use.
    assert [e.username for e in audit_events(app, "auth.factors_confirmed")] == ["admin"]


def test_a_grant_needs_the_registration_verified(app):
    give_drlee_dea(app)
    add_registrant(app)
    propose_as(app, "admin", "drlee", "grant")
    with pytest.raises(Refused, match="verified") as refused:
        approve_as(app, "drpark", "drlee", "grant", verified=False)
    assert refused.value.field == "verified"


def test_a_grant_is_proposed_only_for_an_enabled_prescriber_with_a_dea_number(app):
    with pytest.raises(Refused, match="Record their DEA number first"):
        propose_as(app, "admin", "drlee", "grant")
    with pytest.raises(Refused, match="Only a prescriber"):
        propose_as(app, "admin", "nurse", "grant")
    # Nothing was spent: the admin's code is still unused.
    assert audit_events(app, "auth.factors_confirmed") == []
    assert audit_events(app, "epcs.grant_proposed") == []


def test_only_an_administrator_proposes(app):
    give_drlee_dea(app)
    add_registrant(app)
    with pytest.raises(Refused, match="Only an administrator proposes"):
        propose_as(app, "drpark", "drlee", "grant")


# --- the codes ----------------------------------------------------------------------------------


def test_a_wrong_code_is_refused_counted_and_nothing_is_proposed(app):
    give_drlee_dea(app)
    add_registrant(app)
    with pytest.raises(Refused, match="doesn't match") as refused:
        act(
            app,
            "admin",
            lambda a, find: epcs.propose(
                actor=a, user=find("drlee"), kind="grant", totp_code="000000"
            ),
        )
    assert refused.value.field == "totp_code"
    assert get(app, "admin").failed_sign_ins == 1
    assert (
        "wrong code at EPCS grant proposal" in audit_events(app, "auth.sign_in_failed")[-1].detail
    )
    with app.app_context():
        assert db.session.query(AccountApproval).count() == 0


def test_a_replayed_code_is_refused(app):
    give_drlee_dea(app)
    add_registrant(app)
    code = fresh_code(app, "admin")
    act(
        app,
        "admin",
        lambda a, find: epcs.propose(actor=a, user=find("drlee"), kind="grant", totp_code=code),
    )
    second = fresh_code(app, "admin")
    act(
        app,
        "admin",
        lambda a, find: epcs.withdraw(actor=a, user=find("drlee"), kind="grant", totp_code=second),
    )
    code = fresh_code(app, "admin")
    act(
        app,
        "admin",
        lambda a, find: epcs.propose(actor=a, user=find("drlee"), kind="grant", totp_code=code),
    )
    with pytest.raises(Refused, match="already used"):
        act(
            app,
            "admin",
            lambda a, find: epcs.withdraw(
                actor=a, user=find("drlee"), kind="grant", totp_code=code
            ),
        )
    assert (
        audit_events(app, "auth.factors_refused")[-1].detail
        == "EPCS grant withdrawal; code already used"
    )
    assert get(app, "admin").failed_sign_ins == 0  # a replay is not a guess


def test_the_approver_needs_the_password_too(app):
    give_drlee_dea(app)
    add_registrant(app)
    propose_as(app, "admin", "drlee", "grant")
    with pytest.raises(Refused, match="password is not correct") as refused:
        approve_as(app, "drpark", "drlee", "grant", password="not the password at all")
    assert refused.value.field == "password"
    with pytest.raises(Refused, match="Type your password"):
        approve_as(app, "drpark", "drlee", "grant", password="")
    with app.app_context():
        assert not epcs.may_sign_controlled(get(app, "drlee").id)


def test_a_proposal_lapses_after_a_day(app):
    give_drlee_dea(app)
    add_registrant(app)
    propose_as(app, "admin", "drlee", "grant")
    with app.app_context():
        db.session.execute(
            db.update(AccountApproval).values(proposed_at=utcnow() - timedelta(hours=25))
        )
        db.session.commit()
        db.session.remove()
    with pytest.raises(Refused, match="or it lapsed"):
        approve_as(app, "drpark", "drlee", "grant")
    propose_as(app, "admin", "drlee", "grant")  # a fresh proposal can be made
    approve_as(app, "drpark", "drlee", "grant")
    with app.app_context():
        assert epcs.may_sign_controlled(get(app, "drlee").id)


# --- revoking -----------------------------------------------------------------------------------


def test_a_revoke_suspends_at_once_and_ends_the_grant_when_approved(app):
    grant_drlee(app)
    drlee_id = get(app, "drlee").id
    propose_as(app, "admin", "drlee", "revoke")
    with app.app_context():
        assert not epcs.may_sign_controlled(drlee_id)  # suspended while it waits
        assert epcs.current_permission(drlee_id) is not None
    approve_as(app, "drpark", "drlee", "revoke", verified=False)  # nothing to verify
    with app.app_context():
        permission = db.session.scalars(select(EpcsPermission)).one()
        assert permission.revoked_at is not None and permission.revoke_reason == "revoked"
        assert permission.revoked_by_id == get(app, "drpark").id
        assert not epcs.may_sign_controlled(drlee_id)
    assert audit_events(app, "epcs.revoked")[-1].detail == "revoked"


def test_a_withdrawn_revoke_lifts_the_suspension(app):
    grant_drlee(app)
    drlee_id = get(app, "drlee").id
    propose_as(app, "admin", "drlee", "revoke")
    code = fresh_code(app, "admin")
    act(
        app,
        "admin",
        lambda a, find: epcs.withdraw(actor=a, user=find("drlee"), kind="revoke", totp_code=code),
    )
    with app.app_context():
        assert epcs.may_sign_controlled(drlee_id)
    assert audit_events(app, "epcs.revoke_withdrawn")[-1].username == "admin"


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("dea changed", "DEA number changed"),
        ("dea removed", "DEA number removed"),
        ("disabled", "account disabled"),
        ("role removed", "prescriber role removed"),
    ],
)
def test_a_grant_ends_at_once_when_what_it_was_for_goes(app, how, reason):
    grant_drlee(app)
    drlee_id = get(app, "drlee").id
    if how == "dea changed":
        act(
            app,
            "admin",
            lambda a, find: epcs.set_dea_number(actor=a, user=find("drlee"), number="BL2345672"),
        )
    elif how == "dea removed":
        act(
            app,
            "admin",
            lambda a, find: epcs.set_dea_number(actor=a, user=find("drlee"), number=""),
        )
    elif how == "disabled":
        act(
            app,
            "admin",
            lambda a, find: services.set_user_enabled(actor=a, user=find("drlee"), enabled=False),
        )
        act(
            app,
            "admin",
            lambda a, find: services.set_user_enabled(actor=a, user=find("drlee"), enabled=True),
        )
    else:
        act(
            app,
            "admin",
            lambda a, find: services.update_user(
                actor=a, user=find("drlee"), full_name="Jordan Lee", email=None, roles=["nurse"]
            ),
        )
        act(
            app,
            "admin2" if False else "admin",
            lambda a, find: services.update_user(
                actor=a,
                user=find("drlee"),
                full_name="Jordan Lee",
                email=None,
                roles=["prescriber"],
            ),
        )
    with app.app_context():
        assert not epcs.may_sign_controlled(drlee_id)
        permission = db.session.scalars(select(EpcsPermission)).one()
        assert permission.revoke_reason == reason
    assert audit_events(app, "epcs.revoked")[-1].detail == reason


# --- may_sign_controlled --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "allowed"),
    [
        ({}, True),
        ({"is_enabled": False}, False),
        ({"mfa_enabled": False}, False),
        ({"dea_number": None}, False),
        ({"dea_number": "BL2345672"}, False),  # not the number the grant was for
    ],
)
def test_may_sign_controlled_truth_table(app, change, allowed):
    grant_drlee(app)
    if change:
        set_user(app, "drlee", **change)  # behind the services' back: the query still decides
    with app.app_context():
        assert epcs.may_sign_controlled(get(app, "drlee").id) is allowed


def test_may_sign_controlled_is_false_without_a_grant_or_the_role(app):
    give_drlee_dea(app)
    with app.app_context():
        assert not epcs.may_sign_controlled(get(app, "drlee").id)
        assert not epcs.may_sign_controlled(get(app, "nurse").id)
        assert not epcs.may_sign_controlled(987654)


# --- confirm_signing_factors ----------------------------------------------------------------------


def _confirm(app, username, password, code, *, controlled):
    with app.test_request_context():
        try:
            confirm_signing_factors(
                get(app, username).id, password, code, controlled=controlled, source="127.0.0.1"
            )
        finally:
            db.session.remove()


def test_signing_a_non_controlled_prescription_asks_a_fresh_code_only(app):
    code = fresh_code(app, "drlee")
    _confirm(app, "drlee", None, code, controlled=False)
    event = audit_events(app, "auth.factors_confirmed")[-1]
    assert event.username == "drlee" and event.detail == "signing a prescription; code"
    with pytest.raises(Refused, match="already used") as refused:  # the double click
        _confirm(app, "drlee", None, code, controlled=False)
    assert refused.value.field == "totp_code"
    with pytest.raises(Refused, match="Type the 6-digit code"):
        _confirm(app, "drlee", None, "", controlled=False)
    with pytest.raises(Refused, match="doesn't match"):
        _confirm(app, "drlee", None, "123456" if code != "123456" else "654321", controlled=False)
    assert get(app, "drlee").failed_sign_ins == 1


def test_signing_a_controlled_prescription_needs_the_grant_the_password_and_a_code(app):
    with pytest.raises(Refused, match="not allowed to sign controlled"):
        _confirm(app, "drlee", PASSWORD, fresh_code(app, "drlee"), controlled=True)
    grant_drlee(app)
    with pytest.raises(Refused, match="Type your password") as refused:
        _confirm(app, "drlee", "", fresh_code(app, "drlee"), controlled=True)
    assert refused.value.field == "password"
    with pytest.raises(Refused, match="password is not correct"):
        _confirm(app, "drlee", "wrong password entirely", fresh_code(app, "drlee"), controlled=True)
    _confirm(app, "drlee", PASSWORD, fresh_code(app, "drlee"), controlled=True)
    assert audit_events(app, "auth.factors_confirmed")[-1].detail == (
        "signing a controlled prescription; password and code"
    )


def test_signing_factors_back_off_after_repeated_failures(app):
    for _ in range(6):
        with pytest.raises(Refused):
            _confirm(app, "drlee", None, "000000", controlled=False)
    with pytest.raises(Refused, match="Too many wrong"):
        _confirm(app, "drlee", None, fresh_code(app, "drlee"), controlled=False)
    assert audit_events(app, "auth.factors_refused")[-1].detail.endswith("account backing off")


def test_a_recovery_code_does_not_sign(app):
    with pytest.raises(Refused, match="doesn't match"):
        _confirm(app, "drlee", None, "abcde-12345", controlled=False)


def test_secrets_are_what_the_helpers_use():
    assert pyotp.TOTP(SECRETS["drpark"]).now().isdigit()
    assert DRPARK_DEA[1] == "P"


# --- the pages ----------------------------------------------------------------------------------


def test_the_pages_take_a_grant_from_proposal_to_approval(app, signed_in):
    add_registrant(app)
    admin = signed_in("admin")
    drlee_id = get(app, "drlee").id
    url = f"/admin/users/{drlee_id}"
    page = admin.get(url).get_data(as_text=True)
    assert "Controlled substances (EPCS)" in page
    assert "Record their DEA number to propose" in page
    # A mistyped number is refused beside its field, keeping what was typed.
    refused = admin.post_form(f"{url}/dea-number", {"dea-dea_number": WRONG_CHECK_DIGIT})
    assert refused.status_code == 422
    assert field_error(refused, "dea-dea_number").startswith("The last digit does not match")
    assert WRONG_CHECK_DIGIT in refused.get_data(as_text=True)
    # A number whose second letter is not their initial is saved with a warning.
    saved = admin.post_form(f"{url}/dea-number", {"dea-dea_number": "bk 1234563"})
    assert saved.status_code == 302
    shown = admin.get(url).get_data(as_text=True)
    assert "usually the initial of the registrant" in shown
    admin.post_form(f"{url}/dea-number", {"dea-dea_number": DRLEE_DEA})
    page = admin.get(url).get_data(as_text=True)
    assert '<label class="form-label" for="epcs-totp_code">Code from your authenticator app' in page
    assert "Propose allowing controlled-substance signing" in page
    # Without a code nothing is proposed.
    missing = admin.post_form(f"{url}/epcs/propose", {"epcs-kind": "grant"})
    assert missing.status_code == 422
    assert (
        field_error(missing, "epcs-totp_code")
        == "Type the 6-digit code from your authenticator app."
    )
    proposed = admin.post_form(
        f"{url}/epcs/propose", {"epcs-kind": "grant", "epcs-totp_code": fresh_code(app, "admin")}
    )
    assert proposed.status_code == 302
    assert "Grant waiting for a DEA registrant" in admin.get(url).get_data(as_text=True)
    assert "Permission to sign controlled prescriptions for" in admin.get("/admin/users").get_data(
        as_text=True
    )
    # The users' list never shows the number.
    assert DRLEE_DEA not in admin.get("/admin/users").get_data(as_text=True)
    # The registrant sees it (whole: they verify it) and approves with password and code.
    registrant = signed_in("drpark")
    assert "EPCS approvals" in registrant.get("/auth/account").get_data(as_text=True)
    waiting = registrant.get("/admin/epcs").get_data(as_text=True)
    assert "Allow Jordan Lee to sign controlled prescriptions" in waiting and DRLEE_DEA in waiting
    prefix = f"p{drlee_id}"
    unverified = registrant.post_form(
        f"/admin/epcs/{drlee_id}/approve",
        {
            f"{prefix}-kind": "grant",
            f"{prefix}-password": PASSWORD,
            f"{prefix}-totp_code": fresh_code(app, "drpark"),
        },
    )
    assert unverified.status_code == 422
    assert "verified" in field_error(unverified, f"{prefix}-verified")
    approved = registrant.post_form(
        f"/admin/epcs/{drlee_id}/approve",
        {
            f"{prefix}-kind": "grant",
            f"{prefix}-verified": "y",
            f"{prefix}-password": PASSWORD,
            f"{prefix}-totp_code": fresh_code(app, "drpark"),
        },
    )
    assert approved.status_code == 302
    with app.app_context():
        assert epcs.may_sign_controlled(drlee_id)
    assert "Propose revoking controlled-substance signing" in admin.get(url).get_data(as_text=True)
    assert "Nothing is waiting." in registrant.get("/admin/epcs").get_data(as_text=True)


def test_the_prescriber_concerned_sees_why_they_cannot_approve(app, signed_in):
    give_drlee_dea(app)
    set_user(
        app, "drlee", dea_number_set_at=utcnow() - timedelta(days=2), dea_number_set_by_id=None
    )
    propose_as(app, "admin", "drlee", "grant")
    page = signed_in("drlee").get("/admin/epcs").get_data(as_text=True)
    assert "You can't approve this: It is about your own account." in page
    refused = signed_in("drlee").post_form(
        f"/admin/epcs/{get(app, 'drlee').id}/approve",
        {
            f"p{get(app, 'drlee').id}-kind": "grant",
            f"p{get(app, 'drlee').id}-verified": "y",
            f"p{get(app, 'drlee').id}-password": PASSWORD,
            f"p{get(app, 'drlee').id}-totp_code": fresh_code(app, "drlee"),
        },
    )
    assert refused.status_code == 422
    assert "Another person must approve" in refused.get_data(as_text=True)


def test_a_registrant_declines_with_a_code(app, signed_in):
    give_drlee_dea(app)
    add_registrant(app)
    propose_as(app, "admin", "drlee", "grant")
    drlee_id = get(app, "drlee").id
    declined = signed_in("drpark").post_form(
        f"/admin/epcs/{drlee_id}/withdraw",
        {f"p{drlee_id}-kind": "grant", f"p{drlee_id}-totp_code": fresh_code(app, "drpark")},
    )
    assert declined.status_code == 302
    assert audit_events(app, "epcs.grant_withdrawn")[-1].username == "drpark"


def test_other_roles_cannot_reach_the_epcs_pages(app, signed_in):
    drlee_id = get(app, "drlee").id
    for role in ("front_desk", "nurse", "prescriber"):
        client = signed_in(role)
        assert (
            client.post_form(
                f"/admin/users/{drlee_id}/dea-number", {"dea-dea_number": DRLEE_DEA}
            ).status_code
            == 403
        )
        assert (
            client.post_form(
                f"/admin/users/{drlee_id}/epcs/propose", {"epcs-kind": "grant"}
            ).status_code
            == 403
        )
    for role in ("front_desk", "nurse", "admin"):
        client = signed_in(role)
        assert client.get("/admin/epcs").status_code == 403
        assert client.post_form(f"/admin/epcs/{drlee_id}/approve").status_code == 403
    assert get(app, "drlee").dea_number is None


def test_the_demo_prescriber_may_sign_controlled_prescriptions(tmp_path):
    demo = migrated_app(tmp_path / "demo")
    with demo.app_context():
        seed_clinic_and_users()
        drlee = db.session.scalars(select(User).filter_by(username="drlee")).one()
        assert dea.check_dea_number(drlee.dea_number, drlee.full_name).warnings == ()
        assert epcs.may_sign_controlled(drlee.id)
        db.session.remove()
        db.engine.dispose()


def test_one_code_confirms_one_signing_even_in_parallel(app):
    """Two clicks on "Sign" (or two tabs) carrying the same code: one signing goes on."""
    code = fresh_code(app, "drlee")
    drlee_id = get(app, "drlee").id

    def attempt():
        with app.app_context():
            try:
                confirm_signing_factors(drlee_id, None, code, controlled=False)
            except Refused as refusal:
                return refusal.message
            finally:
                db.session.remove()
            return "confirmed"

    results = run_together([attempt] * 4)
    assert results.count("confirmed") == 1
    assert sorted(set(results) - {"confirmed"}) == [
        "That code was already used: wait for the next one in your app."
    ]

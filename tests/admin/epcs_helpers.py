"""Helpers of the EPCS tests: DEA numbers, a second registrant, fresh codes, acting as
someone through the services."""

from __future__ import annotations

import threading
from datetime import timedelta

import pyotp

from portal.auth import epcs, services
from portal.auth.models import User, UserRole
from portal.extensions import db
from portal.timeutil import utcnow
from tests.auth.helpers import EXTRA_TOTP_SECRET, create_user, give_mfa
from tests.support.clients import actor_of
from tests.support.database import PASSWORD, TOTP_SECRETS

# Valid numbers (form and check digit): Jordan Lee's, Ana Park's, and one for "Lee" whose
# check digit is wrong.
DRLEE_DEA = "BL1234563"
DRPARK_DEA = "FP2345672"
WRONG_CHECK_DIGIT = "BL1234564"
SECRETS = {**TOTP_SECRETS, "drpark": EXTRA_TOTP_SECRET, "admin2": EXTRA_TOTP_SECRET}


def act(app, username: str, action):
    """Run ``action(actor, find_user)`` as ``username`` would from the pages."""
    with app.test_request_context():
        try:
            return action(actor_of(username), services.find_user)
        finally:
            db.session.remove()


def fresh_code(app, username: str) -> str:
    """The current code of the account, with its last used step forgotten (as if the next
    30 seconds had passed): tests chain steps without waiting."""
    with app.app_context():
        db.session.execute(
            db.update(User).where(User.username == username).values(totp_last_step=None)
        )
        db.session.commit()
        db.session.remove()
    return pyotp.TOTP(SECRETS[username]).now()


def set_user(app, username: str, **values) -> None:
    with app.app_context():
        db.session.execute(db.update(User).where(User.username == username).values(**values))
        db.session.commit()
        db.session.remove()


def get(app, username: str) -> User:
    with app.app_context():
        user = db.session.scalars(db.select(User).filter_by(username=username)).one()
        user.roles  # noqa: B018
        db.session.expunge_all()
        db.session.remove()
    return user


def add_registrant(app, username: str = "drpark", full_name: str = "Ana Park") -> None:
    """A second prescriber, independent of "admin": role and DEA number a day old and given
    by nobody in the test (as set up before provenance), with two-step sign-in."""
    create_user(app, username, full_name, ["prescriber"])
    give_mfa(app, username)
    day_ago = utcnow() - timedelta(days=2)
    with app.app_context():
        user_id = db.session.scalar(db.select(User.id).filter_by(username=username))
        db.session.execute(
            db.update(UserRole)
            .where(UserRole.user_id == user_id)
            .values(granted_by_id=None, granted_at=day_ago)
        )
        db.session.execute(
            db.update(User)
            .where(User.id == user_id)
            .values(
                dea_number=DRPARK_DEA,
                dea_number_set_by_id=None,
                dea_number_set_at=day_ago,
                password_hash=db.select(User.password_hash)
                .filter_by(username="drlee")
                .scalar_subquery(),
            )
        )
        db.session.commit()
        db.session.remove()


def give_drlee_dea(app) -> None:
    act(
        app,
        "admin",
        lambda a, find: epcs.set_dea_number(actor=a, user=find("drlee"), number=DRLEE_DEA),
    )


def grant_drlee(app) -> None:
    """Dr Lee may sign controlled prescriptions: admin proposes, drpark approves."""
    give_drlee_dea(app)
    add_registrant(app)
    propose_as(app, "admin", "drlee", "grant")
    approve_as(app, "drpark", "drlee", "grant")


def propose_as(app, who: str, whom: str, kind: str):
    code = fresh_code(app, who)
    return act(
        app,
        who,
        lambda a, find: epcs.propose(actor=a, user=find(whom), kind=kind, totp_code=code),
    )


def approve_as(app, who: str, whom: str, kind: str, *, code=None, password=PASSWORD, verified=True):
    code = code if code is not None else fresh_code(app, who)
    return act(
        app,
        who,
        lambda a, find: epcs.approve(
            actor=a,
            user=find(whom),
            kind=kind,
            totp_code=code,
            password=password,
            verified=verified,
        ),
    )


def run_together(actions):
    """Start every action at once (a barrier) and collect the results in order."""
    barrier = threading.Barrier(len(actions))
    results = [None] * len(actions)

    def run(index, action):
        barrier.wait()
        results[index] = action()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results

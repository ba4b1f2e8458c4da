"""Parallel requests cannot skip the back-off or use one code twice."""

from __future__ import annotations

import threading

from tests.auth.helpers import get_user, totp_code
from tests.support.clients import PortalClient
from tests.support.database import PASSWORD, TOTP_SECRETS


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


def test_parallel_wrong_passwords_are_all_counted(app):
    browsers = [PortalClient(app) for _ in range(6)]
    for browser in browsers:
        browser.refresh_csrf()
    results = run_together(
        [
            lambda b=browser: (
                b.post_form(
                    "/auth/sign-in", {"username": "nurse", "password": "wrong guess number x"}
                ).status_code
            )
            for browser in browsers
        ]
    )
    assert results == [401] * 6
    user = get_user(app, "nurse")
    # Attempts on one account queue up: five are counted and lock it, the sixth finds it
    # locked. Without the row lock they all read 0 and the count ends at 1.
    assert user.failed_sign_ins == 5
    assert user.locked_until is not None


def test_one_totp_code_signs_in_only_once_even_in_parallel(app):
    browsers = [PortalClient(app) for _ in range(4)]
    for browser in browsers:
        browser.refresh_csrf()
        browser.post_form("/auth/sign-in", {"username": "drlee", "password": PASSWORD})
    code = totp_code(TOTP_SECRETS["drlee"])
    results = run_together(
        [
            lambda b=browser: b.post_form("/auth/second-factor", {"code": code}).status_code
            for browser in browsers
        ]
    )
    assert sorted(results) == [302, 401, 401, 401]

"""Fixtures of the sign-in and session tests: the browser ones (tests/support/browser.py) and
a small page with a form added to the app (helpers are in helpers.py)."""

from __future__ import annotations

import pytest
from flask import request

from portal.auth.permissions import require
from tests.support.browser import browser, page, pytest_runtest_makereport, shot, sign_in, watch  # noqa: F401


@pytest.fixture
def notes_page(app):
    """A small page with a form, added to the app the way a feature would add one.

    GET shows a form; POST echoes what was sent, so a test can see the form arrive.
    """

    @require("account.self")
    def notes():
        if request.method == "POST":
            return f"saved note: {request.form.get('note', '')} / {request.form.get('kind', '')}"
        return '<form method="post"><label for="n">Note</label><input id="n" name="note"></form>'

    app.add_url_rule("/test-notes", "test_notes", notes, methods=["GET", "POST"])
    return "/test-notes"

"""Fixtures of the patient registry tests: the browser ones (tests/support/browser.py) and the
signed-in front desk (helpers are in helpers.py)."""

from __future__ import annotations

import pytest

from tests.support.browser import browser, page, pytest_runtest_makereport, shot, sign_in, watch  # noqa: F401
from tests.support.chart import chart  # noqa: F401  (the patient page's appointments)


@pytest.fixture
def desk(signed_in):
    """Front desk, signed in: registers, edits and searches patients."""
    return signed_in("front_desk")

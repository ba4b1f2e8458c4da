"""Fixtures of the home page's tests: the browser ones and the small chart."""

from __future__ import annotations

from tests.support.browser import browser, page, pytest_runtest_makereport, shot, sign_in, watch  # noqa: F401
from tests.support.chart import chart  # noqa: F401

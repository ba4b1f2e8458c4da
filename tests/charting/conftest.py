"""Shared fixtures of the charting tests: a small chart to work on (tests/support/chart.py)
and the browser fixtures (Chromium watched for console errors and CSP violations,
tests/support/browser.py)."""

from tests.support.browser import (  # noqa: F401
    browser,
    new_page,
    page,
    pytest_runtest_makereport,
    shot,
    sign_in,
    watch,
)
from tests.support.chart import chart, make_appointment, make_encounter, make_note  # noqa: F401

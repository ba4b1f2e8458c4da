"""Shared fixtures of the prescription tests: a small chart to prescribe on, and its visits
(tests/support/chart.py); the browser fixtures (Chromium watched for console errors and CSP
violations, tests/support/browser.py)."""

from tests.support.browser import (  # noqa: F401
    browser,
    new_page,
    page,
    pytest_runtest_makereport,
    shot,
    sign_in,
    watch,
)
from tests.support.chart import chart, make_appointment, make_encounter  # noqa: F401

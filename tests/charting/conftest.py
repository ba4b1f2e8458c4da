"""Shared fixtures of the charting tests: a small chart to work on (tests/chart_fixtures.py)
and the browser fixtures (Chromium watched for console errors and CSP violations,
tests/browser.py)."""

from tests.browser import (  # noqa: F401
    browser,
    new_page,
    page,
    pytest_runtest_makereport,
    shot,
    sign_in,
    watch,
)
from tests.chart_fixtures import (  # noqa: F401
    chart,
    make_appointment,
    make_encounter,
    make_note,
)

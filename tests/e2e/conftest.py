"""Browser-test fixtures for this folder (defined once, in tests/browser.py), and the small
chart the charting flow starts from (tests/chart_fixtures.py)."""

from tests.browser import (  # noqa: F401
    browser,
    page,
    pytest_runtest_makereport,
    shot,
    sign_in,
    watch,
)
from tests.chart_fixtures import chart, make_appointment  # noqa: F401

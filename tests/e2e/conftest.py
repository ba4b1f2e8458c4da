"""Browser-test fixtures for this folder (defined once, in tests/support/browser.py), and the small
chart the charting flow starts from (tests/support/chart.py)."""

from tests.support.browser import (  # noqa: F401
    browser,
    new_page,
    page,
    pytest_runtest_makereport,
    shot,
    sign_in,
    watch,
)
from tests.support.chart import chart, make_appointment  # noqa: F401

"""Shared fixtures of the prescription tests: a small chart to prescribe on
(tests/support/chart.py)."""

from tests.support.browser import (  # noqa: F401
    browser,
    new_page,
    page,
    pytest_runtest_makereport,
    shot,
    watch,
)
from tests.support.chart import chart, make_encounter  # noqa: F401

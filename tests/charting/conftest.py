"""Fixtures for the charting tests. The browser ones are defined once, in tests/browser.py."""

from tests.browser import (  # noqa: F401
    browser,
    page,
    pytest_runtest_makereport,
    shot,
    sign_in,
    watch,
)

"""Fixtures for the admin tests. The browser ones are defined once, in tests/support/browser.py."""

from tests.support.browser import (  # noqa: F401
    browser,
    new_page,
    page,
    pytest_runtest_makereport,
    shot,
    sign_in,
    watch,
)

"""Fixtures for the API clients' tests. The browser ones are defined once, in
tests/support/browser.py."""

from tests.support.browser import (  # noqa: F401
    browser,
    page,
    pytest_runtest_makereport,
    sign_in,
    watch,
)

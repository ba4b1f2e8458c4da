"""Fixtures for the audit tests. The browser ones are defined once, in tests/support/browser.py."""

from tests.support.browser import browser, page, pytest_runtest_makereport, shot, sign_in, watch  # noqa: F401

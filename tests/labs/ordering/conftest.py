"""Fixtures of the lab ordering tests: a small chart (tests/support/chart.py) and a lab over
MLLP on a real loopback socket with its connector enabled. The browser fixtures come from
tests/labs/conftest.py: importing them here too would make a second package-scoped browser,
which Playwright's sync API refuses to start while the labs folder's is alive."""

import pytest

from tests.labs.ordering.helpers import (
    MllpLab,
    enable_test_lab,
    register_test_lab,
    unregister_test_lab,
)
from tests.support.chart import chart, make_encounter  # noqa: F401


@pytest.fixture
def lab_connector():
    """The test lab's connector class registered (and forgotten afterwards)."""
    register_test_lab()
    yield
    unregister_test_lab()


@pytest.fixture
def lab(app, lab_connector):
    """A lab answering on a free loopback port, its connector enabled for the clinic."""
    server = MllpLab()
    enable_test_lab(app, server, lab_codes="24323-8=CMP14^Comp. Metabolic Panel (14)")
    yield server
    server.stop()

"""Shared fixtures of the prescription tests: a small chart to prescribe on, and its visits
(tests/support/chart.py); the DoseSpot sandbox as a live server, enabled for the clinic
(``sandbox``; a module may define its own); the browser fixtures (Chromium watched for
console errors and CSP violations, tests/support/browser.py)."""

import pytest

from tests.integrations.dosespot.helpers import SandboxServer
from tests.prescriptions.dosespot_support import enable_dosespot
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


@pytest.fixture
def sandbox(app, live_server):
    server = SandboxServer.for_portal(live_server)
    enable_dosespot(app, server)
    yield server
    server.stop()

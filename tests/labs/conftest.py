"""The labs' fixtures: the MLLP listener on a free loopback port, in a thread."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from portal.labs.listener import MllpServer


@pytest.fixture
def listener(app):
    """The real listener (threads, sockets, the test database) on a free port."""
    server = MllpServer(app, "127.0.0.1", 0)
    thread = server.serve_in_thread()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def zone():
    return ZoneInfo("America/New_York")


from tests.support.browser import (  # noqa: E402, F401  (the browser tests' fixtures)
    browser,
    new_page,
    page,
    pytest_runtest_makereport,
    shot,
    sign_in,
    watch,
)

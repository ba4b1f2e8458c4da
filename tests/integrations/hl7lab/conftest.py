"""The lab sandbox on free loopback ports, and the labs' real listener it reports to."""

from __future__ import annotations

import pytest

from portal.integrations.sandbox.hl7lab.server import LabSandbox
from portal.labs.listener import MllpServer
from tests.integrations.hl7lab.helpers import FAST


@pytest.fixture
def listener(app):
    """The real results listener (threads, sockets, the test database) on a free port."""
    server = MllpServer(app, "127.0.0.1", 0)
    thread = server.serve_in_thread()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def lab(listener):
    """The lab sandbox, reporting to ``listener``."""
    sandbox = LabSandbox({**FAST, "results_port": listener.port}).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def lone_lab():
    """The lab sandbox with nobody listening for its results (the connector's own tests)."""
    sandbox = LabSandbox({**FAST, "results_port": 9, "result_delay": 600}).start()
    yield sandbox
    sandbox.stop()

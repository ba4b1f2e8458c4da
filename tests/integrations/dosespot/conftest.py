from __future__ import annotations

import pytest

from tests.integrations.dosespot.helpers import SandboxServer


@pytest.fixture
def sandbox():
    server = SandboxServer()
    yield server
    server.stop()

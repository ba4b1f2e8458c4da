"""The FHIR tests' fixtures: the resource types a test registers are removed after it."""

from __future__ import annotations

import pytest

from portal.fhir.resources import RESOURCE_TYPES


@pytest.fixture
def resource_types(monkeypatch):
    """Register resource types for one test: ``resource_types(spec, ...)``."""

    def register(*specs):
        for spec in specs:
            monkeypatch.setitem(RESOURCE_TYPES, spec.type, spec)

    return register

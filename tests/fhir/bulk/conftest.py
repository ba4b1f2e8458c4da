"""The bulk tests' fixtures."""

from __future__ import annotations

import pytest

from portal.fhir.resources import RESOURCE_TYPES


@pytest.fixture
def resource_types():
    """Serve only the resource types a test registers (``resource_types(spec, ...)``): the
    real ones are put back afterwards, so a test of the export machinery knows what it
    exports whatever types exist."""
    kept = dict(RESOURCE_TYPES)
    RESOURCE_TYPES.clear()

    def register(*specs):
        for spec in specs:
            RESOURCE_TYPES[spec.type] = spec

    yield register
    RESOURCE_TYPES.clear()
    RESOURCE_TYPES.update(kept)

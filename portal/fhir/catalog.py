"""Every resource type the API serves, loaded: importing a resource module registers its
``ResourceSpec`` in ``RESOURCE_TYPES``. The views, bulk export and import read the types
through this module, so each sees all of them whatever it imported first."""

from __future__ import annotations

import portal.fhir.resources.directory
import portal.fhir.resources.patient  # noqa: F401  (each module registers its types)
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.spec import ResourceSpec

# Types that are the clinic's directory rather than any patient's record: reading them is
# not audited, and ``$everything`` includes them only when the record points at them.
DIRECTORY_TYPES = frozenset({"Practitioner", "Organization", "Location"})


def spec_for(resource_type: str) -> ResourceSpec | None:
    """The spec of a FHIR type name, or None for a type this server does not serve."""
    return RESOURCE_TYPES.get(resource_type)


def served_types() -> list[str]:
    """The type names served, in a stable order (the CapabilityStatement's)."""
    return sorted(RESOURCE_TYPES)

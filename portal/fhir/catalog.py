"""The resource types the API serves, as the HTTP layer asks about them: by name, in a
stable order, and which of them are the clinic's directory rather than patient data.
(Importing ``portal.fhir.resources`` registers every type.)"""

from __future__ import annotations

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

"""The resource types the FHIR API serves, by FHIR type name."""

from __future__ import annotations

from portal.fhir.spec import ResourceSpec

# Filled by the resource modules of this package (one per resource type).
RESOURCE_TYPES: dict[str, ResourceSpec] = {}

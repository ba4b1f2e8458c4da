"""The resource types the FHIR API serves, by FHIR type name."""

from __future__ import annotations

from portal.fhir.spec import ResourceSpec

# Filled by the resource modules of this package (one per resource type).
RESOURCE_TYPES: dict[str, ResourceSpec] = {}

# Every type registers itself when imported: importing this package fills RESOURCE_TYPES,
# whoever imports it (the API, bulk export, the worker). (After RESOURCE_TYPES, which they
# import.)
from portal.fhir.resources import (  # noqa: E402
    allergy,
    appointment,
    condition,
    directory,
    document_reference,
    encounter,
    immunization,
    laboratory,
    medication_request,
    observation,
    patient,
)

__all__ = [
    "RESOURCE_TYPES",
    "allergy",
    "appointment",
    "condition",
    "directory",
    "document_reference",
    "encounter",
    "immunization",
    "laboratory",
    "medication_request",
    "observation",
    "patient",
]

"""What this server says it does: the CapabilityStatement (``GET /fhir/metadata``) and
SMART's ``.well-known/smart-configuration``, both made from what is actually served
(``RESOURCE_TYPES`` and the routes present), so they cannot promise more than the code."""

from __future__ import annotations

from flask import current_app

from portal.fhir import token_endpoint
from portal.fhir.bundles import base_url
from portal.fhir.catalog import served_types, spec_for

FHIR_VERSION = "4.0.1"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SOFTWARE = "Practice Portal"
_US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-"
PROFILES = {
    "Patient": _US_CORE + "patient",
    "Practitioner": _US_CORE + "practitioner",
    "Organization": _US_CORE + "organization",
    "Location": _US_CORE + "location",
}
EVERYTHING = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
EVERYTHING_DOC = (
    "Parameters: start and end (dates of care, YYYY, YYYY-MM or YYYY-MM-DD, in the clinic's "
    "time zone: each type's own date, e.g. an Encounter's, a vital sign's, a prescription's "
    "authoredOn, a problem's recorded date), _since (an instant: resources changed since "
    "then), _type (the types wanted). The Patient is always included."
)
PATIENT_EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"


def token_url() -> str:
    """Where API clients get tokens (OAuth 2.0 client credentials): the token endpoint's
    own answer, which honours ``FHIR_TOKEN_URL`` behind a proxy."""
    return token_endpoint.token_url()


def _has_route(path: str, method: str = "GET") -> bool:
    return any(
        rule.rule == path and method in rule.methods for rule in current_app.url_map.iter_rules()
    )


def _resource(resource_type: str) -> dict:
    spec = spec_for(resource_type)
    entry = {"type": resource_type}
    if resource_type in PROFILES:
        entry["supportedProfile"] = [PROFILES[resource_type]]
    entry["interaction"] = [{"code": "read"}, {"code": "search-type"}]
    entry["searchParam"] = [{"name": "_id", "type": "token"}] + [
        {"name": name, "type": kind} for name, kind in sorted(spec.search_params.items())
    ]
    if spec.includes:
        entry["searchInclude"] = sorted(spec.includes)
    if resource_type == "Patient":
        entry["operation"] = [
            {"name": "everything", "definition": EVERYTHING, "documentation": EVERYTHING_DOC}
        ]
        if _has_route("/fhir/Patient/$export"):
            entry["operation"].append({"name": "export", "definition": PATIENT_EXPORT})
    return entry


def capability_statement(published: str) -> dict:
    """The CapabilityStatement of this server as it runs."""
    rest = {
        "mode": "server",
        "security": {
            "cors": False,
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "SMART-on-FHIR",
                        }
                    ]
                }
            ],
            "extension": [
                {"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url()}]}
            ],
            "description": "OAuth 2.0 client credentials (SMART Backend Services); "
            "system scopes such as system/*.read or system/Patient.read.",
        },
        "resource": [_resource(resource_type) for resource_type in served_types()],
    }
    interactions = []
    if _has_route("/fhir", "POST"):
        interactions = [{"code": "transaction"}, {"code": "batch"}]
    if interactions:
        rest["interaction"] = interactions
    if _has_route("/fhir/$export"):
        rest["operation"] = [{"name": "export", "definition": EXPORT}]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "publisher": SOFTWARE,
        "kind": "instance",
        "software": {"name": SOFTWARE},
        "implementation": {"description": f"{SOFTWARE} FHIR API", "url": base_url()},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [rest],
    }


def smart_configuration() -> dict:
    """SMART App Launch's discovery document, for backend services."""
    return {
        "token_endpoint": token_url(),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/*.read", "system/*.rs", "system/Patient.read"],
        "capabilities": [
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "permission-v1",
            "permission-v2",
        ],
    }

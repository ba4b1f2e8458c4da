"""FHIR JSON answers of the bulk routes: resources and OperationOutcomes with their status.

Issues carry words and codes, never the values a client sent (a name in an imported
Bundle is patient data, and error bodies end up in clients' logs).
"""

from __future__ import annotations

import json

from flask import Response

FHIR_JSON = "application/fhir+json"
NDJSON = "application/fhir+ndjson"


def fhir_response(resource: dict, status: int = 200, headers: dict | None = None) -> Response:
    """A resource as ``application/fhir+json``; never cached (it may hold patient data)."""
    response = Response(
        json.dumps(resource, separators=(",", ":"), ensure_ascii=False),
        status=status,
        mimetype=FHIR_JSON,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def issue(severity: str, code: str, text: str, expression: str | None = None) -> dict:
    """One OperationOutcome issue (``code`` from the FHIR issue-type value set)."""
    found = {"severity": severity, "code": code, "diagnostics": text}
    if expression:
        found["expression"] = [expression]
    return found


def outcome(*issues: dict) -> dict:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def outcome_response(
    status: int, code: str, text: str, *, expression: str | None = None, headers=None
) -> Response:
    """An error answered as an OperationOutcome with one issue."""
    return fhir_response(outcome(issue("error", code, text, expression)), status, headers)

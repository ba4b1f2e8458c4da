"""Every refusal of the FHIR API is an OperationOutcome with the HTTP status it names.

Views and the access check raise ``FhirError``; werkzeug's own errors (a path that matches
no route, a method the route does not take, a body too large) reaching a ``/fhir`` path are
answered the same way, so a client never gets an HTML error page from the API.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import HTTPException

from portal.fhir import bp
from portal.fhir.responses import fhir_response
from portal.transaction import Refused
from portal.web import register_api_errors

# HTTP status -> the OperationOutcome issue code (http://hl7.org/fhir/issue-type) it means.
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    500: "exception",
}


class FhirError(Exception):
    """A refusal of the API: ``status``, a message for the client's developer
    (``diagnostics``: never patient data), optionally the parameter it concerns
    (``expression``) and headers (``WWW-Authenticate``, ``Retry-After``)."""

    def __init__(
        self,
        status: int,
        diagnostics: str,
        *,
        code: str | None = None,
        expression: str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code or ISSUE_CODES.get(status, "processing")
        self.expression = expression
        self.headers = headers or {}


def issue(severity: str, code: str, diagnostics: str, expression: str | None = None) -> dict:
    """One OperationOutcome issue."""
    entry = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        entry["expression"] = [expression]
    return entry


def operation_outcome(issues: list[dict]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": issues}


def error_response(error: FhirError):
    body = operation_outcome([issue("error", error.code, error.diagnostics, error.expression)])
    return fhir_response(body, error.status, error.headers)


def _from_http_exception(status: int, error: HTTPException):
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    # werkzeug's descriptions are generic sentences (no request data): safe to pass on.
    return error_response(FhirError(status, error.description or error.name, headers=headers))


def _from_refusal(error: Refused):
    return error_response(FhirError(error.status, error.message, expression=error.field))


# The blueprint's own handlers: declared once, when this module is imported (a blueprint
# takes no new handlers after its first registration, and tests make many apps).
bp.register_error_handler(FhirError, error_response)
bp.register_error_handler(Refused, _from_refusal)
bp.register_error_handler(HTTPException, lambda error: _from_http_exception(error.code, error))


def register(app: Flask) -> None:
    """Answer werkzeug's errors on ``/fhir`` paths that never reach the blueprint (a path
    no route matches, a method no route takes) as OperationOutcome too."""
    register_api_errors(app, bp.url_prefix, _from_http_exception)

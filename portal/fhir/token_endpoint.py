"""``POST /fhir/auth/token``: OAuth 2.0 client credentials for FHIR API clients.

Form-encoded (RFC 6749 4.4): ``grant_type=client_credentials`` and an optional ``scope``;
the client authenticates by HTTP Basic, by ``client_id`` / ``client_secret`` in the form, or
by a signed assertion (``client_assertion_type`` = jwt-bearer, ``client_assertion``: SMART
Backend Services). The answer is JSON, never cached: ``{"access_token", "token_type":
"bearer", "expires_in", "scope"}``, or an OAuth error (``invalid_client`` 401,
``invalid_request`` / ``invalid_scope`` / ``unsupported_grant_type`` 400).

Public (the credentials are the proof) and without CSRF (a machine posts it, no cookie).

``token_url()`` is this endpoint's URL as clients see it (``FHIR_TOKEN_URL`` behind a proxy):
the audience of their assertions, and what the CapabilityStatement and SMART's discovery
document should name.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from flask import current_app, jsonify, request, url_for

from portal.auth.permissions import public
from portal.fhir import bp, clients

FORM = "application/x-www-form-urlencoded"


def _basic_credentials() -> tuple[str, str] | None:
    """HTTP Basic client credentials, each form-encoded first as RFC 6749 2.3.1 asks."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")  # sent, but unreadable: a failed authentication, not none at all
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def _oauth_error(error: str, description: str, status: int):
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="fhir"'
    return response


def token_url() -> str:
    """This endpoint's URL as clients see it: the audience their assertions name."""
    return current_app.config.get("FHIR_TOKEN_URL") or url_for("fhir.token", _external=True)


@bp.post("/auth/token")
@public
def token():
    if request.mimetype != FORM:
        return _oauth_error("invalid_request", f"Send the request as {FORM}.", 400)
    form = request.form
    try:
        issued = clients.issue_token(
            clients.TokenRequest(
                grant_type=form.get("grant_type"),
                scope=form.get("scope"),
                basic=_basic_credentials(),
                client_id=form.get("client_id"),
                client_secret=form.get("client_secret"),
                assertion_type=form.get("client_assertion_type"),
                assertion=form.get("client_assertion"),
                token_url=token_url(),
                source=request.remote_addr,
            )
        )
    except clients.TokenRefused as refused:
        response = _oauth_error(refused.error, refused.description, refused.status)
        if refused.retry_after is not None:
            response.headers["Retry-After"] = str(refused.retry_after)
        return response
    return jsonify(
        access_token=issued.access_token,
        token_type="bearer",  # noqa: S106  (RFC 6750 token type)
        expires_in=issued.expires_in,
        scope=issued.scope,
    )

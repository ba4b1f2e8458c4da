"""How the FHIR API answers: JSON only, as ``application/fhir+json``.

A client says what it wants with ``_format`` (which wins, as FHIR says) or ``Accept``.
JSON in any of its spellings is served; XML, which this server does not speak, is refused
with 406 rather than answered in a format the client did not ask for.
"""

from __future__ import annotations

from flask import Response, request

from portal.fhir.bundles import dumps

FHIR_JSON = "application/fhir+json"
# What ``_format`` and ``Accept`` may name for the JSON we serve.
JSON_FORMATS = frozenset({"json", FHIR_JSON, "application/json", "application/json+fhir"})
_ANY = frozenset({"*/*", "application/*"})


def wants_json() -> bool:
    """Whether the client accepts the JSON we serve (``_format`` first, then ``Accept``).

    No ``Accept`` at all, or one that allows anything, is JSON: most clients send nothing
    or ``*/*``. A ``_format`` or ``Accept`` that names only XML or another type is not.
    """
    asked = request.args.get("_format") or request.form.get("_format")
    if asked:
        return asked.split(";")[0].strip().lower() in JSON_FORMATS
    if not request.headers.get("Accept"):
        return True
    for media_type, quality in request.accept_mimetypes:
        bare = media_type.split(";")[0].strip().lower()  # "...+json; fhirVersion=4.0"
        if quality > 0 and (bare in JSON_FORMATS or bare in _ANY):
            return True
    return False


def fhir_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    """``body`` as FHIR JSON with ``status``."""
    return Response(
        dumps(body),
        status=status,
        headers=headers,
        content_type=f"{FHIR_JSON}; charset=utf-8",
    )

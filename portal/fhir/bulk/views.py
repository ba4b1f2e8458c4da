"""Routes of bulk export and Bundle import, on the ``fhir`` blueprint.

Export (FHIR Bulk Data Access 2.0): ``GET /fhir/$export`` and ``GET /fhir/Patient/$export``
(kick-off, 202 + ``Content-Location``), ``GET /fhir/bulkstatus/<job>`` (202 with
``X-Progress`` while it runs, 200 with the manifest), ``GET /fhir/bulkfiles/<job>/<file>``
(NDJSON, the same token), ``DELETE /fhir/bulkstatus/<job>`` (cancel or delete: 202).
Import: ``POST /fhir`` with a ``transaction`` or ``batch`` Bundle.

Views stay thin: they read the request, call the services (``export``, ``imports``) with
the API client as the actor, and answer FHIR JSON. Every route is token-authorized
(``fhir_access``) and CSRF-exempt: a bearer token is never sent by a browser on its own.
"""

from __future__ import annotations

import json

from flask import current_app, g, request, send_file, url_for

from portal.dates import parse_instant
from portal.fhir import bp
from portal.fhir.access import fhir_access
from portal.fhir.bulk import export, imports
from portal.fhir.bulk.responses import NDJSON, fhir_response, outcome_response
from portal.transaction import Refused

OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
KICK_OFF_PARAMETERS = {"_type", "_since", "_outputFormat"}
# Bundles larger than this are refused before they are read (413).
DEFAULT_IMPORT_MAX_BYTES = 10 * 1024 * 1024


def _actor():
    return g.fhir_client.actor


def _prefer() -> set[str]:
    return {part.strip().lower() for part in request.headers.get("Prefer", "").split(",")}


# --- export -------------------------------------------------------------------------------


@bp.get("/$export")
@fhir_access(None)
def export_system():
    """Every resource of every type the client may read (or those of ``_type``)."""
    return _kick_off("system")


@bp.get("/Patient/$export")
@fhir_access("Patient")
def export_patients():
    """Every patient's compartment: the types that belong to a patient."""
    return _kick_off("patient")


def _kick_off(level: str):
    if "respond-async" not in _prefer():
        return outcome_response(
            400, "required", "Bulk export is asynchronous: send 'Prefer: respond-async'."
        )
    unknown = sorted(set(request.args) - KICK_OFF_PARAMETERS)
    if unknown and "handling=lenient" not in _prefer():
        return outcome_response(
            400,
            "not-supported",
            f"Parameters not supported: {', '.join(unknown)}.",
            expression=unknown[0],
        )
    output_format = request.args.get("_outputFormat")
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        return outcome_response(
            400, "not-supported", "Only NDJSON output is offered.", expression="_outputFormat"
        )
    since = None
    if request.args.get("_since"):
        since = parse_instant(request.args["_since"])
        if since is None:
            return outcome_response(
                400, "invalid", "_since must be an instant with its offset.", expression="_since"
            )
    offered = export.exportable_types(level)
    caller = g.fhir_client
    if request.args.get("_type"):
        types = list(
            dict.fromkeys(
                name.strip() for part in request.args.getlist("_type") for name in part.split(",")
            )
        )
        not_offered = [name for name in types if name not in offered]
        if not_offered:
            return outcome_response(
                400,
                "not-supported",
                f"Not exported at this level: {', '.join(not_offered)}.",
                expression="_type",
            )
        refused = [name for name in types if not caller.allows(name)]
        if refused:
            return outcome_response(
                403, "forbidden", f"The token's scopes do not cover {', '.join(refused)}."
            )
    else:
        # No _type: every type the client may read (Bulk Data: the server's choice).
        types = [name for name in offered if caller.allows(name)]
    try:
        job = export.start_export(
            _actor(),
            g.fhir_client.id,
            g.fhir_client.name,
            level=level,
            types=types,
            since=since,
            request_url=request.url,
        )
    except Refused as refusal:
        return outcome_response(403, "forbidden", refusal.message)
    status_url = url_for("fhir.bulk_status", job_id=job.id, _external=True)
    return fhir_response(
        {"resourceType": "OperationOutcome", "issue": [_accepted_issue()]},
        202,
        {"Content-Location": status_url},
    )


def _accepted_issue() -> dict:
    return {"severity": "information", "code": "informational", "diagnostics": "Export queued."}


@bp.get("/bulkstatus/<int:job_id>")
@fhir_access(None)
def bulk_status(job_id: int):
    """202 with ``X-Progress`` while the job waits or runs; the manifest when done."""
    job = export.job_of_client(g.fhir_client.id, job_id)
    if job is None:
        return outcome_response(404, "not-found", "No such export.")
    if job.status in ("queued", "running"):
        return fhir_response(
            {"resourceType": "OperationOutcome", "issue": [_progress_issue(job)]},
            202,
            {"X-Progress": export.progress_text(job), "Retry-After": "2"},
        )
    if job.status == "failed":
        return outcome_response(500, "exception", job.error or "The export failed.")
    manifest = {
        "transactionTime": job.transaction_time.isoformat().replace("+00:00", "Z"),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {
                "type": entry["type"],
                "url": url_for(
                    "fhir.bulk_file", job_id=job.id, file_name=entry["file"], _external=True
                ),
                "count": entry["count"],
            }
            for entry in job.output
        ],
        "error": [],
    }
    headers = {"Expires": job.expires_at.strftime("%a, %d %b %Y %H:%M:%S GMT")}
    response = fhir_response(manifest, 200, headers)
    response.mimetype = "application/json"  # the manifest is plain JSON, not a resource
    return response


def _progress_issue(job) -> dict:
    return {"severity": "information", "code": "informational", "diagnostics": job.status}


@bp.delete("/bulkstatus/<int:job_id>")
@fhir_access(None)
def bulk_cancel(job_id: int):
    """Cancel a job, or delete a finished one's files: 202; 404 when there is none."""
    if not export.cancel_export(_actor(), g.fhir_client.id, job_id):
        return outcome_response(404, "not-found", "No such export.")
    return fhir_response(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "information", "code": "informational", "diagnostics": "Deleted."}
            ],
        },
        202,
    )


@bp.get("/bulkfiles/<int:job_id>/<file_name>")
@fhir_access(None)
def bulk_file(job_id: int, file_name: str):
    """One NDJSON file of the client's completed job, streamed from disk; audited."""
    job = export.job_of_client(g.fhir_client.id, job_id)
    found = export.output_file(job, file_name) if job is not None else None
    if found is None:
        return outcome_response(404, "not-found", "No such file.")
    entry, path = found
    if not g.fhir_client.allows(entry["type"]):
        return outcome_response(
            403, "forbidden", f"The token's scopes do not cover {entry['type']}."
        )
    export.record_download(_actor(), job, entry)
    response = send_file(path, mimetype=NDJSON, conditional=False, etag=False)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- import -------------------------------------------------------------------------------


@bp.post("")
@fhir_access(None, write=True)
def import_bundle():
    """A ``transaction`` (all or nothing) or ``batch`` (entry by entry) Bundle."""
    limit = current_app.config.get("FHIR_IMPORT_MAX_BYTES", DEFAULT_IMPORT_MAX_BYTES)
    if request.content_length is not None and request.content_length > limit:
        return outcome_response(413, "too-costly", f"A Bundle may hold at most {limit} bytes.")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        return outcome_response(413, "too-costly", f"A Bundle may hold at most {limit} bytes.")
    mimetype = (request.mimetype or "").lower()
    if mimetype not in ("application/fhir+json", "application/json"):
        return outcome_response(415, "not-supported", "Send the Bundle as application/fhir+json.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return outcome_response(400, "structure", "The body is not valid JSON.")
    for resource_type in imports.types_in(body):
        if not g.fhir_client.allows(resource_type, write=True):
            return outcome_response(
                403, "forbidden", f"The token's scopes do not cover writing {resource_type}."
            )
    result = imports.import_bundle(_actor(), body)
    return fhir_response(result.body, result.status)

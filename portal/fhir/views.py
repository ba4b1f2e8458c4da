"""The FHIR API's routes: the CapabilityStatement, read, search (GET and POST
``_search``), ``_include``, ``_summary=count``, and ``Patient/{id}/$everything``.

Thin, as every view: parse the request into the spec's terms (``Criterion`` values, a
page key, a count), call a service, bundle. A request flows token -> spec -> bundle ->
audit: ``fhir_access`` checks the bearer token, the resource type's ``ResourceSpec`` reads,
the bundle is made here, and ``services`` records one audit event per patient before the
response leaves.

Paging is by keyset: ``next`` carries the spec's key in ``_after`` with every other
parameter, so a page is stable under inserts. ``total`` is given only when it is free
(the whole result fits on the first page, or ``_summary=count``): counting a million rows
for every page is not.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from urllib.parse import urlencode

from cryptography.fernet import InvalidToken
from flask import Response, current_app, g, request, stream_with_context

from portal.auth.permissions import public
from portal.crypto import decrypt_text, encrypt_text
from portal.dates import parse_instant
from portal.fhir import bp
from portal.fhir.access import fhir_access
from portal.fhir.bundles import base_url, count_only, searchset, streamed_searchset
from portal.fhir.capability import capability_statement, smart_configuration
from portal.fhir.catalog import served_types, spec_for
from portal.fhir.errors import FhirError, issue, operation_outcome
from portal.fhir.params import parse_date_value
from portal.fhir.resources.keyset import row_id
from portal.fhir.responses import FHIR_JSON, fhir_response, wants_json
from portal.fhir.services import (
    collect_directory_references,
    count,
    directory_resources,
    everything,
    included_resources,
    read_resource,
    record_patient_reads,
    record_scope_refused,
    search,
)
from portal.fhir.spec import Criterion, Gone, InvalidSearch
from portal.timeutil import utcnow

DEFAULT_COUNT = 50
MAX_COUNT = 500
# Parameters that shape the answer rather than select resources.
CONTROL = frozenset({"_count", "_after", "_include", "_summary", "_format", "_pretty"})
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# Bounds on one search, far beyond any real client's: each criterion is a condition in the
# query, and a query of thousands of them is refused by SQLite and slow on PostgreSQL.
MAX_CRITERIA = 30
MAX_VALUES = 100  # comma-separated values of one parameter
MAX_VALUE_CHARS = 500


@bp.before_request
def refuse_other_formats():
    """JSON only: a client that asks for XML (or anything else only) gets 406."""
    if not wants_json():
        raise FhirError(406, "This server answers in FHIR JSON only (application/fhir+json).")


@bp.get("/metadata")
@public
def metadata():
    """The CapabilityStatement: public, as FHIR clients read it before they have a token."""
    published = current_app.extensions.setdefault("fhir.published", _now())
    return fhir_response(capability_statement(published))


@bp.get("/.well-known/smart-configuration")
@public
def smart_discovery():
    """SMART's discovery document (plain JSON, as SMART asks): where a backend service gets
    its token and how it may authenticate there. Public, like the CapabilityStatement."""
    return Response(_json(smart_configuration()), content_type="application/json; charset=utf-8")


@bp.get("/<resource_type>/<fhir_id>")
@fhir_access(None)
def read(resource_type: str, fhir_id: str):
    """One resource by id: 404 unknown, 410 no longer served, 400 not an id at all."""
    _check_type(resource_type)
    if not FHIR_ID.fullmatch(fhir_id):
        raise FhirError(400, "Not a FHIR id.", code="value")
    try:
        resource = read_resource(g.fhir_client.actor, resource_type, fhir_id)
    except Gone as error:
        raise FhirError(410, f"{resource_type}/{fhir_id} is no longer available.") from error
    return fhir_response(resource)


@bp.get("/<resource_type>")
@fhir_access(None)
def search_get(resource_type: str):
    """Search with the parameters in the query string (names there end up in logs: see
    ``search_post``), or page on through a POSTed search's sealed ``_query``."""
    if "_query" in request.args:
        items = _unseal(request.args["_query"])
        items += [(k, v) for k, v in request.args.items(multi=True) if k == "_after"]
        return _search(resource_type, items, sealed=True)
    return _search(resource_type, list(request.args.items(multi=True)))


@bp.post("/<resource_type>/_search")
@fhir_access(None)
def search_post(resource_type: str):
    """Search with the parameters in a form-encoded body (and the query string, if any):
    a name search then puts no name in a URL, where proxies and server logs would keep it."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise FhirError(415, "POST _search takes application/x-www-form-urlencoded.")
    items = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
    return _search(resource_type, items, sealed=True)


@bp.get("/Patient/<fhir_id>/$everything")
@fhir_access("Patient")
def patient_everything(fhir_id: str):
    """The patient's whole record as one searchset Bundle, streamed: the Patient, every
    resource of theirs of the types the token covers (``_type`` narrows them), and
    (``include``) the practitioners, locations and organization it points at.

    ``start`` and ``end`` (dates, the clinic's days) keep the resources whose care falls in
    that range (each type's own date: an Encounter's, a vital sign's when taken, a
    prescription's when written...; ``EVERYTHING_PARAMETERS``); ``_since`` (an instant)
    the resources changed since then. The Patient is always sent. Other parameters are
    reported as ignored (400 under ``Prefer: handling=strict``)."""
    patient_id = row_id(fhir_id) if FHIR_ID.fullmatch(fhir_id) else None
    if patient_id is None:
        raise FhirError(404, f"Patient/{fhir_id} is not known.")
    args = request.args
    unknown = [name for name in args if name not in EVERYTHING_PARAMETERS]
    if unknown and _strict():
        raise FhirError(400, f"Unknown parameter {unknown[0]}.", expression=unknown[0])
    types = served_types()
    if "_type" in args:
        wanted = {t for value in args.getlist("_type") for t in value.split(",")}
        types = [t for t in types if t in wanted]
    since, care = _everything_range(args)
    outcome = None
    if unknown:
        outcome = operation_outcome(
            [issue("warning", "not-supported", f"Parameter {n} was ignored.", n) for n in unknown]
        )
    patient, rest = everything(
        g.fhir_client.actor, patient_id, g.fhir_client.allows, types, since, care
    )
    referenced: dict[str, set[str]] = {}

    def matches():
        yield [patient]
        yield from rest

    def sent(serialized: bytes) -> None:
        collect_directory_references(serialized, referenced)

    def directory():
        return directory_resources(referenced, g.fhir_client.allows)

    body = streamed_searchset(request.url, matches(), directory, outcome, sent)
    return Response(stream_with_context(body), content_type=f"{FHIR_JSON}; charset=utf-8")


# What ``$everything`` reads; anything else is reported (or refused under strict handling).
EVERYTHING_PARAMETERS = frozenset({"_format", "_pretty", "_type", "start", "end", "_since"})
_PLAIN_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def _everything_range(args) -> tuple[datetime | None, list[str]]:
    """``$everything``'s ``_since`` (an instant with its offset) and ``start`` / ``end``
    (FHIR dates: a year, a month or a day) as the date search values the types read."""
    since = None
    if args.get("_since"):
        since = parse_instant(args["_since"])
        if since is None:
            raise FhirError(
                400,
                "_since is an instant with its offset (2024-01-01T00:00:00Z).",
                code="value",
                expression="_since",
            )
    care = []
    for name, prefix in (("start", "ge"), ("end", "le")):
        value = args.get(name)
        if value is None:
            continue
        try:
            if not _PLAIN_DATE.fullmatch(value):
                raise InvalidSearch(name, "")
            parse_date_value(name, value)
        except InvalidSearch as error:
            raise FhirError(
                400,
                f"{name} is a date: YYYY, YYYY-MM or YYYY-MM-DD.",
                code="value",
                expression=name,
            ) from error
        care.append(prefix + value)
    return since, care


def _search(resource_type: str, items: list[tuple[str, str]], *, sealed: bool = False):
    """One search. ``sealed`` (a POSTed search, and the pages after it): the Bundle's links
    carry the criteria encrypted in ``_query``, never in clear, so a name searched for
    without a URL stays out of URLs on the next pages too."""
    _check_type(resource_type)
    spec = spec_for(resource_type)
    params = _Params.parse(spec, items)
    if params.unknown and _strict():
        name = params.unknown[0]
        raise FhirError(400, f"Unknown or unsupported parameter {name}.", expression=name)
    actor = g.fhir_client.actor
    try:
        if params.summary_count:
            total = count(actor, resource_type, params.criteria)
            counted = [("_query", _seal(params.items))] if sealed else params.items
            return fhir_response(count_only(_url(resource_type, counted), total))
        page = search(actor, resource_type, params.criteria, params.after, params.count)
    except InvalidSearch as error:
        raise FhirError(400, error.message, code="value", expression=error.parameter) from error
    included = included_resources(params.includes, page.resources, g.fhir_client.allows)
    record_patient_reads(actor, "fhir.search", page.resources + included)
    kept = [(k, v) for k, v in params.items if k != "_after"]
    if sealed:
        query = [("_query", _seal(kept))]
        self_url = _url(resource_type, query + [(k, v) for k, v in params.items if k == "_after"])
    else:
        query, self_url = kept, _url(resource_type, params.items)
    next_url = None
    if page.next_after is not None:
        next_url = _url(resource_type, [*query, ("_after", page.next_after)])
    first_and_last = params.after is None and page.next_after is None
    outcome = None
    if params.unknown:
        outcome = operation_outcome(
            [
                issue("warning", "not-supported", f"Parameter {name} was ignored.", name)
                for name in params.unknown
            ]
        )
    bundle = searchset(
        self_url=self_url,
        matches=page.resources,
        included=included,
        next_url=next_url,
        total=len(page.resources) if first_and_last else None,
        outcome=outcome,
    )
    return fhir_response(bundle)


class _Params:
    """A search's parameters, split: criteria for the spec, the controls, and the names
    this type does not know (ignored with a warning, or refused under strict handling)."""

    def __init__(self):
        self.items: list[tuple[str, str]] = []
        self.criteria: list[Criterion] = []
        self.unknown: list[str] = []
        self.includes: list[tuple[str, str]] = []  # (_include value, target type)
        self.after: str | None = None
        self.count = DEFAULT_COUNT
        self.summary_count = False

    @classmethod
    def parse(cls, spec, items: list[tuple[str, str]]) -> _Params:
        params = cls()
        for key, value in items:
            if "\x00" in key or "\x00" in value:
                # No database stores a NUL in text (PostgreSQL refuses it outright).
                raise FhirError(400, "Parameters cannot hold NUL characters.", code="value")
            name, _, modifier = key.partition(":")
            if name in ("_format", "_pretty"):
                continue
            params.items.append((key, value))
            if name == "_count":
                params.count = _count(value)
                # "_count=0": no resources, only how many (FHIR's reading; fhirpy's count()).
                params.summary_count = params.summary_count or params.count == 0
            elif name == "_after":
                params.after = value
            elif name == "_summary":
                if value == "count":
                    params.summary_count = True
                elif value != "false":
                    params.unknown.append(f"_summary={value}")
            elif name == "_include":
                target = spec.includes.get(value)
                if target is None:
                    params.unknown.append(f"_include={value}")
                else:
                    params.includes.append((value, target))
            elif name == "_id" or name in spec.search_params:
                if not value:
                    raise FhirError(400, f"Parameter {key} has no value.", expression=key)
                values = value.split(",")
                if len(values) > MAX_VALUES or any(len(v) > MAX_VALUE_CHARS for v in values):
                    raise FhirError(
                        400,
                        f"Too many or too long values for {name}.",
                        code="too-costly",
                        expression=name,
                    )
                params.criteria.append(Criterion(name, modifier or None, values))
                if len(params.criteria) > MAX_CRITERIA:
                    raise FhirError(400, "Too many search parameters.", code="too-costly")
            else:
                params.unknown.append(key)
        return params


def _count(value: str) -> int:
    if not value.isdigit():
        raise FhirError(400, f"_count is a number from 0 to {MAX_COUNT}.", expression="_count")
    return min(int(value), MAX_COUNT)


def _check_type(resource_type: str) -> None:
    if spec_for(resource_type) is None:
        raise FhirError(
            404, f"Resource type {resource_type[:64]} is not served here.", code="not-supported"
        )
    if not g.fhir_client.allows(resource_type):
        record_scope_refused(g.fhir_client.actor, request.endpoint, resource_type)
        raise FhirError(
            403,
            f"The token's scopes do not cover {resource_type}.",
            headers={"WWW-Authenticate": 'Bearer realm="fhir", error="insufficient_scope"'},
        )


def _strict() -> bool:
    """``Prefer: handling=strict``: refuse unknown parameters instead of ignoring them."""
    prefer = request.headers.get("Prefer", "")
    return any(part.strip() == "handling=strict" for part in re.split("[,;]", prefer))


# How long the sealed criteria of a POSTed search stay usable for paging.
SEALED_QUERY_SECONDS = 3600


def _seal(items: list[tuple[str, str]]) -> str:
    """A POSTed search's criteria, encrypted (and bound to the client), for its links."""
    return encrypt_text(json.dumps({"client": g.fhir_client.id, "items": items}))


def _unseal(sealed: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(decrypt_text(sealed, ttl=SEALED_QUERY_SECONDS))
        if data.get("client") != g.fhir_client.id:
            raise ValueError("another client's search")
        return [(str(k), str(v)) for k, v in data["items"]]
    except (InvalidToken, ValueError, KeyError, TypeError) as error:
        raise FhirError(
            400,
            "The search's _query is not valid (or has expired): search again.",
            code="value",
            expression="_query",
        ) from error


def _url(resource_type: str, items: list[tuple[str, str]]) -> str:
    query = urlencode(items)
    return f"{base_url()}/{resource_type}" + (f"?{query}" if query else "")


def _now() -> str:
    return utcnow().isoformat(timespec="seconds").replace("+00:00", "Z")


def _json(value: dict) -> str:
    return fhir_response(value).get_data(as_text=True)

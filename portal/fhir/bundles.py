"""Bundles the API answers with: a search's page (``searchset``) and a patient's whole
record (``$everything``, streamed).

Entries carry ``fullUrl`` (the resource's URL on this server) and ``search.mode``:
``match`` for what was asked, ``include`` for what ``_include`` added, ``outcome`` for the
OperationOutcome that reports ignored parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import orjson
from flask import request


def base_url() -> str:
    """This server's FHIR base (``https://host/fhir``), as the client reached it."""
    return request.host_url.rstrip("/") + "/fhir"


def entry(resource: dict, mode: str, base: str | None = None) -> dict:
    """A Bundle entry; ``base`` is ``base_url()`` when the caller has it already (a long
    record asks for it once, not once per entry)."""
    url = f"{base or base_url()}/{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": url, "resource": resource, "search": {"mode": mode}}


def searchset(
    *,
    self_url: str,
    matches: list[dict],
    included: list[dict] = (),
    next_url: str | None = None,
    total: int | None = None,
    outcome: dict | None = None,
) -> dict:
    """One page of a search."""
    bundle = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": "self", "url": self_url}]
    if next_url:
        bundle["link"].append({"relation": "next", "url": next_url})
    entries = [entry(resource, "match") for resource in matches]
    entries += [entry(resource, "include") for resource in included]
    if outcome is not None:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return bundle


def count_only(self_url: str, total: int) -> dict:
    """``_summary=count``: how many, and nothing of them."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": self_url}],
    }


def streamed_searchset(
    self_url: str,
    chunks: Iterable[list[dict]],
    later: Callable[[], list[dict]] | None = None,
    outcome: dict | None = None,
    sent: Callable[[bytes], None] | None = None,
) -> Iterator[bytes]:
    """A searchset Bundle as JSON (UTF-8 bytes) in pieces, so a long record is never held
    whole: ``total`` comes last, when it is known (JSON objects have no order).
    ``chunks`` are lists of matches, each serialised in one orjson call and sent as one
    piece (a piece or a call per entry made the WSGI layer's and the serialiser's per-item
    work a large share of a long record's time); ``sent(json)`` is told of each chunk's
    entries as they go (to find what they point at cheaply). ``later()`` gives resources
    to add as ``include`` entries once the matches are sent (the practitioners and
    locations they pointed at).
    """
    base = base_url()
    head = {"resourceType": "Bundle", "type": "searchset"}
    head["link"] = [{"relation": "self", "url": self_url}]
    yield dumps(head)[:-1] + b',"entry":['
    total = 0
    for resources in chunks:
        if not resources:
            continue
        piece = dumps(
            [
                {
                    "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
                    "resource": resource,
                    "search": _MATCH,
                }
                for resource in resources
            ]
        )[1:-1]
        if sent is not None:
            sent(piece)
        yield (b"," + piece) if total else piece
        total += len(resources)
    tail = [entry(resource, "include", base) for resource in (later() if later else [])]
    if outcome is not None:
        tail.append({"resource": outcome, "search": {"mode": "outcome"}})
    if tail:
        piece = dumps(tail)[1:-1]
        yield (b"," + piece) if total else piece
    yield f'],"total":{total}}}'.encode()


_MATCH = {"mode": "match"}  # shared by every entry: serialised, never changed


def dumps(value: dict) -> bytes:
    """Compact JSON as UTF-8 bytes (orjson: several times the standard library's speed,
    the same text for the values resources hold: strings, numbers, booleans, lists)."""
    return orjson.dumps(value)

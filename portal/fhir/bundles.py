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
    matches: Iterable[dict],
    later: Callable[[], list[dict]] | None = None,
    outcome: dict | None = None,
    sent: Callable[[dict, bytes], None] | None = None,
) -> Iterator[bytes]:
    """A searchset Bundle as JSON (UTF-8 bytes) in pieces, so a long record is never held
    whole: ``total`` comes last, when it is known (JSON objects have no order).
    ``later()`` gives resources to add as ``include`` entries once the matches are sent
    (the practitioners and locations they pointed at); ``sent(resource, json)`` is told of
    each match with its entry's JSON as it goes (to find what it points at cheaply).

    Entries are serialised with orjson and sent in batches of ``BATCH`` entries: a piece
    per entry made the WSGI layer's per-piece work a large share of a long record's time.
    """
    base = base_url()
    head = {"resourceType": "Bundle", "type": "searchset"}
    head["link"] = [{"relation": "self", "url": self_url}]
    yield dumps(head)[:-1] + b',"entry":['
    total, written = 0, 0
    pieces: list[bytes] = []
    for resource in matches:
        piece = dumps(entry(resource, "match", base))
        if sent is not None:
            sent(resource, piece)
        pieces.append(piece)
        total += 1
        if len(pieces) == BATCH:
            yield (b"," if written else b"") + b",".join(pieces)
            written += len(pieces)
            pieces = []
    tail = [entry(resource, "include", base) for resource in (later() if later else [])]
    if outcome is not None:
        tail.append({"resource": outcome, "search": {"mode": "outcome"}})
    pieces.extend(dumps(item) for item in tail)
    if pieces:
        yield (b"," if written else b"") + b",".join(pieces)
    yield f'],"total":{total}}}'.encode()


BATCH = 200


def dumps(value: dict) -> bytes:
    """Compact JSON as UTF-8 bytes (orjson: several times the standard library's speed,
    the same text for the values resources hold: strings, numbers, booleans, lists)."""
    return orjson.dumps(value)

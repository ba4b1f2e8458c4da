"""Bundles the API answers with: a search's page (``searchset``) and a patient's whole
record (``$everything``, streamed).

Entries carry ``fullUrl`` (the resource's URL on this server) and ``search.mode``:
``match`` for what was asked, ``include`` for what ``_include`` added, ``outcome`` for the
OperationOutcome that reports ignored parameters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

from flask import request


def base_url() -> str:
    """This server's FHIR base (``https://host/fhir``), as the client reached it."""
    return request.host_url.rstrip("/") + "/fhir"


def entry(resource: dict, mode: str) -> dict:
    url = f"{base_url()}/{resource['resourceType']}/{resource['id']}"
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
) -> Iterator[str]:
    """A searchset Bundle as JSON text in pieces, one entry at a time, so a long record is
    never held whole: ``total`` comes last, when it is known (JSON objects have no order).
    ``later()`` gives resources to add as ``include`` entries once the matches are sent
    (the practitioners and locations they pointed at)."""
    head = {"resourceType": "Bundle", "type": "searchset"}
    head["link"] = [{"relation": "self", "url": self_url}]
    yield _dumps(head)[:-1] + ',"entry":['
    total, written = 0, 0
    for resource in matches:
        yield ("," if written else "") + _dumps(entry(resource, "match"))
        total += 1
        written += 1
    tail = [entry(resource, "include") for resource in (later() if later else [])]
    if outcome is not None:
        tail.append({"resource": outcome, "search": {"mode": "outcome"}})
    for item in tail:
        yield ("," if written else "") + _dumps(item)
        written += 1
    yield f'],"total":{total}}}'


def _dumps(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

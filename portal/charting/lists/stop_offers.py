"""What other domains offer once a medication is stopped (prescriptions: cancel the open
prescription it came from, which the pharmacy would otherwise keep filling).

Charting sits under prescriptions in the import order, so it cannot ask them; they register
an offer here instead, as scheduling registers the patient page's part. An offer reads plain
rows for one medication and names the permission its page needs, so a user who may stop a
medication but not act on the offer (a nurse) is not sent to a page they cannot use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StopOffer:
    """One offer: the words shown after the stop, the page that acts on it, who may."""

    message: str
    url: str
    permission: str


_OFFERS: list[Callable[[int], StopOffer | None]] = []


def after_medication_stopped(offer: Callable[[int], StopOffer | None]):
    """Register ``offer(medication_id) -> StopOffer | None`` (a decorator)."""
    _OFFERS.append(offer)
    return offer


def offer_after_stop(medication_id: int, may: Callable[[str], bool]) -> StopOffer | None:
    """The first offer for the stopped medication the user ``may`` act on, or None."""
    for offer in _OFFERS:
        found = offer(medication_id)
        if found is not None and may(found.permission):
            return found
    return None

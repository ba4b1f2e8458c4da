"""Parts of the patient page that other domains fill in (the appointments, from scheduling).

The registry sits under scheduling and charting in the import order, so it cannot ask them;
they register a loader here instead, as they do for ``counts_records_dated_after``. Each
loader reads plain rows for one patient; the patient page's own audit event ("patient.view")
covers what they show, since they are read for that page and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PageSection:
    """One registered part: its fragment, who may see it, and what fills it."""

    template: str
    permission: str
    load: Callable[[int], dict]  # patient id -> the fragment's context
    position: int


_SECTIONS: list[PageSection] = []


def patient_page_section(template: str, *, permission: str, position: int) -> Callable:
    """Decorate a function ``(patient_id) -> dict``: the patient page includes ``template``
    with that dict as ``section``, for users who hold ``permission``."""

    def register(load: Callable[[int], dict]):
        _SECTIONS.append(PageSection(template, permission, load, position))
        _SECTIONS.sort(key=lambda section: section.position)
        return load

    return register


def sections_for(patient_id: int, may: Callable[[str], bool]) -> list[tuple[str, dict]]:
    """(template, context) of every registered part the user ``may`` see, in order."""
    return [
        (section.template, section.load(patient_id))
        for section in _SECTIONS
        if may(section.permission)
    ]

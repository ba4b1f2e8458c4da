"""What the scheduling topics' forms share."""

from __future__ import annotations


def int_or_none(value) -> int | None:
    """A select's value as a whole number, or None when blank or not a number (a field
    that requires one then says so)."""
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None

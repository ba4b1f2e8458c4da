"""vitals_views routes (being built)."""

from portal.charting import bp  # noqa: F401

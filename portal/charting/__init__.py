"""Charting: encounters, notes, vitals, problems, allergies, medications, the chart summary."""

from flask import Blueprint

bp = Blueprint("charting", __name__, url_prefix="/chart")

from portal.charting import (  # noqa: E402,F401  (routes register on import)
    encounter_views,
    lists_views,
    summary_views,
    vitals_views,
)

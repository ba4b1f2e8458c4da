"""Charting, by topic under one blueprint: encounters (and the encounter page), notes,
vitals, immunizations, the patient's lists (problems, allergies, medications) and the chart
and visit summaries; ``models.py`` is the domain's one models module."""

from flask import Blueprint

bp = Blueprint("charting", __name__, url_prefix="/chart")

"""Charting: encounters, notes, vitals, problems, allergies, medications, the chart summary."""

from flask import Blueprint

bp = Blueprint("charting", __name__, url_prefix="/chart")

"""Prescriptions: sending them through an e-prescribing connector, and what comes back
(statuses, the vendor's record written back into the chart)."""

from flask import Blueprint

bp = Blueprint("prescriptions", __name__)

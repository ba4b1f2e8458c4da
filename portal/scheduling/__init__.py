"""Scheduling: availability, the calendar, booking, check-in, the flow board, the waitlist."""

from flask import Blueprint

bp = Blueprint("scheduling", __name__, url_prefix="/schedule")

from portal.scheduling import flow_views, setup_views, views  # noqa: E402,F401  (routes register on import)

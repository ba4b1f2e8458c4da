"""Scheduling: availability, the calendar, booking, check-in, the flow board, the waitlist."""

from flask import Blueprint

bp = Blueprint("scheduling", __name__, url_prefix="/schedule")

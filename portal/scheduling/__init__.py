"""Scheduling: one blueprint; a subpackage per topic (booking, availability, calendar, flow,
waitlist, feeds, setup), one models module, and services.py for what the topics share."""

from flask import Blueprint

bp = Blueprint("scheduling", __name__, url_prefix="/schedule")

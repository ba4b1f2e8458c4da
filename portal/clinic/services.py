"""Reading and changing the clinic's settings."""

from __future__ import annotations

from flask import g, has_app_context
from sqlalchemy import select

from portal.clinic.models import Clinic
from portal.extensions import db

FALLBACK_TIME_ZONE = "America/New_York"


def current_clinic() -> Clinic | None:
    """The installation's clinic (one per installation), cached for the request."""
    if has_app_context() and "clinic" in g:
        return g.clinic
    clinic = db.session.scalars(select(Clinic).order_by(Clinic.id).limit(1)).first()
    if has_app_context():
        g.clinic = clinic
    return clinic


def clinic_time_zone() -> str:
    clinic = current_clinic()
    return clinic.time_zone if clinic else FALLBACK_TIME_ZONE


def clinic_name() -> str:
    clinic = current_clinic()
    return clinic.name if clinic else "Practice Portal"

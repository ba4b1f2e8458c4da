"""Audit trail: events, the hash chain, its verification, and the admins' report."""

from flask import Blueprint

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")

from portal.audit import views  # noqa: E402,F401  (routes register on import)

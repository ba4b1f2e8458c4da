"""Audit trail: events, the hash chain, its verification, and the admins' report."""

from flask import Blueprint

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")

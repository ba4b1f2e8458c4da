"""Audit trail: events with keyed MACs, the sealer's chain, checkpoints, verification, and the
admins' report."""

from flask import Blueprint

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")

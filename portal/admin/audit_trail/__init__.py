"""The audit trail's report for admins: filters, sorting, keyset pages, the CSV export.

Its own blueprint, ``audit`` (endpoints ``audit.report`` and ``audit.export``), under the
admin pages' address."""

from flask import Blueprint

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")

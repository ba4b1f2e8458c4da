"""The audit report for admins (being built: see issue 2, section 3)."""

from portal.audit import bp
from portal.auth.permissions import require
from portal.web import render


@bp.get("/")
@require("audit.read")
def report():
    return render("audit/report.html")

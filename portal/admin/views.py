"""Admin pages (being built: see issue 2, section 2)."""

from portal.admin import bp
from portal.auth.permissions import require
from portal.web import render


@bp.get("/users")
@require("users.manage")
def users():
    return render("admin/users.html")


@bp.get("/clinic")
@require("clinic.manage")
def clinic_settings():
    return render("admin/clinic.html")

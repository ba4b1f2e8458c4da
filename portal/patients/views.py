"""Patient registry pages (being built: see issue 2, section 4)."""

from portal.auth.permissions import require
from portal.patients import bp
from portal.web import render


@bp.route("/new", methods=["GET", "POST"])
@require("patients.write")
def register():
    return render("patients/register.html")


@bp.post("/search")
@require("patients.read")
def search():
    return render("patients/_search_results.html", patients=[])


@bp.get("/<int:patient_id>")
@require("patients.read")
def show(patient_id: int):
    return render("patients/register.html")

"""Home page (what the signed-in user can do next) and the health check."""

from flask import jsonify
from flask_login import current_user
from sqlalchemy import text

from portal.auth.permissions import public, require
from portal.charting.notes.services import worklist
from portal.extensions import db
from portal.main import bp
from portal.main.services import home_day
from portal.scheduling.models import STATUS_LABELS
from portal.transaction import end_read
from portal.web import current_actor, render


@bp.get("/")
@require("account.self")
def home():
    """What the user can do next: a prescriber's own day, the clinic's day and the flow
    board's counts for the front desk and nurses; clinicians also see the notes waiting
    for them."""
    context = {}
    if current_user.has_permission("chart.write"):
        context = worklist(current_actor(), may_cosign=current_user.has_permission("chart.sign"))
    if current_user.has_permission("schedule.read"):
        # Prescribers see patients: their own list is their day. Everyone else who works
        # the schedule runs the whole clinic's day.
        own = current_user.has_permission("chart.sign")
        context["today"] = home_day(current_actor(), provider_id=current_user.id if own else None)
        context["own_day"] = own
        context["appointment_statuses"] = STATUS_LABELS
    return render("main/home.html", **context)


@bp.get("/healthz")
@public
def health():
    """For load balancers: answers 200 when the database answers."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any failure of the database means "not healthy"
        return jsonify(status="unavailable"), 503
    finally:
        end_read()
    return jsonify(status="ok")

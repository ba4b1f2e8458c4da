"""Home page (what the signed-in user can do next) and the health check."""

from flask import jsonify
from flask_login import current_user
from sqlalchemy import text

from portal.auth.permissions import public, require
from portal.charting.notes.services import worklist
from portal.extensions import db
from portal.main import bp
from portal.transaction import end_read
from portal.web import current_actor, render


@bp.get("/")
@require("account.self")
def home():
    """What the user can do next; clinicians also see the notes waiting for them."""
    notes = {}
    if current_user.has_permission("chart.write"):
        notes = worklist(current_actor(), may_cosign=current_user.has_permission("chart.sign"))
    return render("main/home.html", **notes)


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

"""Home page (what the signed-in user can do next) and the health check."""

from flask import jsonify
from sqlalchemy import text

from portal.auth.permissions import public, require
from portal.extensions import db
from portal.main import bp
from portal.web import render


@bp.get("/")
@require("account.self")
def home():
    return render("main/home.html")


@bp.get("/healthz")
@public
def health():
    """For load balancers: answers 200 when the database answers."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any failure of the database means "not healthy"
        return jsonify(status="unavailable"), 503
    finally:
        db.session.rollback()
    return jsonify(status="ok")

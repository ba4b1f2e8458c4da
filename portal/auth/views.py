"""Sign-in (password, then TOTP), MFA enrolment, sign-out, own account, resume after time-out."""

from __future__ import annotations

import io

import segno
from flask import (
    Response,
    flash,
    redirect,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from markupsafe import Markup

from portal.auth import bp, services
from portal.auth.forms import ChangePasswordForm, EnrolmentForm, SecondFactorForm, SignInForm
from portal.auth.models import User
from portal.auth.permissions import public, require
from portal.extensions import db, login_manager
from portal.web import is_htmx_request, render

SIGN_IN_FAILED = (
    "Sign-in failed. Check your username and password. "
    "After several failures, sign-in pauses for a few minutes."
)
PENDING_KEY = "pending_sign_in"  # user id between the password and the second factor
ENROL_SECRET_KEY = "enrol_totp_secret"  # noqa: S105  (a session key name)
RESUME_KEY = "resume"  # {"user_id", "url", "form"}: where to go back to after signing in
MAX_SAVED_FORM_BYTES = 256 * 1024


def register_login_manager(app) -> None:
    login_manager.login_view = "auth.sign_in"
    login_manager.session_protection = None  # the server-side session already binds the user
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(_unauthorized)


def _load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.is_enabled else None


def _unauthorized():
    """Not signed in: remember where the user was (and any form they sent), then sign in.

    The saved form stays on the server, in the new session; it is only offered back to the
    same user, so a time-out never loses what was typed.
    """
    timed_out_user = getattr(session, "timed_out_user_id", None)
    resume = {"user_id": timed_out_user, "url": request.full_path.rstrip("?"), "form": None}
    if request.method == "POST" and timed_out_user:
        fields = [(k, v) for k, v in request.form.items(multi=True) if k != "csrf_token"]
        if sum(len(k) + len(v) for k, v in fields) <= MAX_SAVED_FORM_BYTES:
            resume["form"] = fields
        resume["url"] = request.path
    if request.method == "POST" and not resume["form"]:
        resume["url"] = _same_site_path(request.referrer or "") or "/"
    if is_htmx_request():
        # The fragment's URL is not a page; go back to the page the user was looking at.
        current_url = request.headers.get("HX-Current-URL", "")
        resume["url"] = _same_site_path(current_url) or "/"
    session[RESUME_KEY] = resume
    if timed_out_user:
        flash("Your session timed out. Sign in again to carry on where you were.", "info")
    target = url_for("auth.sign_in")
    if is_htmx_request():
        return Response(status=401, headers={"HX-Redirect": target})
    return redirect(target)


def _same_site_path(url: str) -> str | None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.netloc and parts.netloc != request.host:
        return None
    path = parts.path or "/"
    return path + (f"?{parts.query}" if parts.query else "")


def _safe_path(path: str | None) -> str:
    if not path or not path.startswith("/") or path.startswith("//"):
        return url_for("main.home")
    return path


@bp.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = SignInForm()
    if form.validate_on_submit():
        result = services.check_password(form.username.data, form.password.data)
        if not result.ok:
            form.password.errors.append(SIGN_IN_FAILED)
            return render("auth/sign_in.html", form=form, status=401)
        session[PENDING_KEY] = result.user.id
        if result.needs_mfa:
            return redirect(url_for("auth.second_factor"))
        if result.needs_mfa_enrolment:
            return redirect(url_for("auth.enrol_mfa"))
        return _finish(result.user)
    status = 422 if form.errors else 200
    return render("auth/sign_in.html", form=form, status=status)


def _pending_user() -> User | None:
    user_id = session.get(PENDING_KEY)
    return db.session.get(User, user_id) if user_id else None


@bp.route("/second-factor", methods=["GET", "POST"])
@public
def second_factor():
    user = _pending_user()
    if user is None or not user.mfa_enabled:
        return redirect(url_for("auth.sign_in"))
    form = SecondFactorForm()
    if form.validate_on_submit():
        if services.check_second_factor(user, form.code.data):
            return _finish(user)
        session.pop(PENDING_KEY, None)
        flash(SIGN_IN_FAILED, "danger")
        return redirect(url_for("auth.sign_in"))
    return render("auth/second_factor.html", form=form, status=422 if form.errors else 200)


@bp.route("/enrol-mfa", methods=["GET", "POST"])
@public
def enrol_mfa():
    """Set up TOTP: during sign-in for roles that require it, or later from the account page."""
    user = current_user if current_user.is_authenticated else _pending_user()
    if user is None:
        return redirect(url_for("auth.sign_in"))
    if user.mfa_enabled and not current_user.is_authenticated:
        return redirect(url_for("auth.second_factor"))
    secret = session.get(ENROL_SECRET_KEY) or services.start_mfa_enrolment()
    session[ENROL_SECRET_KEY] = secret
    form = EnrolmentForm()
    if form.validate_on_submit():
        try:
            codes = services.finish_mfa_enrolment(user, secret, form.code.data)
        except services.AccountError as error:
            form.code.errors.append(error.message)
        else:
            session.pop(ENROL_SECRET_KEY, None)
            if not current_user.is_authenticated:
                services.complete_sign_in(user, method="password + new TOTP enrolment")
                _log_in(user)
            return render("auth/recovery_codes.html", codes=codes)
    uri = services.provisioning_uri(user, secret)
    buffer = io.StringIO()
    segno.make(uri, error="m").save(
        buffer, kind="svg", xmldecl=False, svgns=True, scale=5, svgclass="qr-code", lineclass=None
    )
    return render(
        "auth/enrol_mfa.html",
        form=form,
        qr_svg=Markup(buffer.getvalue()),  # noqa: S704  (segno's own SVG, no user input)
        secret=secret,
        required=services.mfa_required_for(user),
        status=422 if form.errors else 200,
    )


def _log_in(user: User) -> None:
    """Sign the user in on a fresh session id (the old one ends on the server)."""
    resume = session.get(RESUME_KEY)
    session.clear()
    session.rotate()
    login_user(user)
    if resume and resume.get("user_id") in (None, user.id):
        session[RESUME_KEY] = resume


def _finish(user: User):
    _log_in(user)
    resume = session.get(RESUME_KEY) or {}
    if resume.get("form") and resume.get("user_id") == user.id:
        return redirect(url_for("auth.resume"))
    session.pop(RESUME_KEY, None)
    return redirect(_safe_path(resume.get("url")))


@bp.get("/resume")
@require("account.self")
def resume():
    """Offer back a form that was sent after the session timed out."""
    saved = session.get(RESUME_KEY) or {}
    if not saved.get("form") or saved.get("user_id") != current_user.id:
        return redirect(url_for("main.home"))
    return render("auth/resume.html", saved=saved, action=_safe_path(saved["url"]))


@bp.post("/resume/discard")
@require("account.self")
def discard_resume():
    saved = session.pop(RESUME_KEY, None) or {}
    return redirect(_safe_path(saved.get("url") if saved.get("url", "").startswith("/") else None))


@bp.post("/sign-out")
@require("account.self")
def sign_out():
    services.record_sign_out(current_user)
    logout_user()
    session.end()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.sign_in"))


@bp.route("/account", methods=["GET", "POST"])
@require("account.self")
def account():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            services.change_own_password(
                current_user, form.current_password.data, form.new_password.data
            )
        except services.AccountError as error:
            getattr(form, error.field).errors.append(error.message)
        else:
            session.rotate()  # this session goes on under a new id; all others ended
            flash("Password changed. Your other sessions were signed out.", "success")
            return redirect(url_for("auth.account"))
    return render(
        "auth/account.html",
        form=form,
        recovery_codes_left=services.unused_recovery_codes(current_user),
        status=422 if form.errors else 200,
    )

"""Sign-in (password, then TOTP), MFA enrolment, sign-out, own account, resume after time-out."""

from __future__ import annotations

from urllib.parse import urlsplit

import segno
from flask import Response, flash, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user
from markupsafe import Markup

from portal.auth import bp, devices, services
from portal.auth.forms import (
    AcknowledgeForm,
    ChangePasswordForm,
    EnrolmentForm,
    NewPasswordForm,
    RecoveryCodeForm,
    SecondFactorForm,
    SignInForm,
)
from portal.auth.models import User
from portal.auth.permissions import public, require
from portal.auth.signed_in import SignedInUser, load_signed_in_user
from portal.crypto import decrypt_text, encrypt_text
from portal.extensions import db, login_manager
from portal.ids import parse_id
from portal.timeutil import utcnow
from portal.transaction import Refused
from portal.web import attach_error, current_actor, is_htmx_request, render, safe_local_path

# One message for every failure (unknown account, wrong password, backing off, disabled), so
# the page never tells whether an account exists or what state it is in.
SIGN_IN_FAILED = (
    "Sign-in failed. Check your username and password. "
    "After several failures, sign-in pauses for a few minutes."
)
SECOND_FACTOR_FAILED = (
    "That code didn't work. Type the newest code from your app; each code works once. "
    "After several failures, sign-in pauses for a few minutes."
)
PENDING_KEY = "pending_sign_in"  # {"user_id", "since"} between the password and the 2nd factor
PENDING_MINUTES = 10  # the second step must follow the password within this time
ENROL_SECRET_KEY = "enrol_totp_secret"  # noqa: S105  (a session key name)
RESUME_KEY = "resume"  # {"user_id", "url", "action", "form"}: where to go after signing in
MAX_SAVED_FORM_BYTES = 256 * 1024
GATE_KEY = "sign_in_gate"  # what this session must finish first: services.GATE_* or absent
# Where each step of the gate is done; these (and signing out) are all a gated session reaches.
GATE_PAGES = {services.GATE_PASSWORD: "auth.choose_password", services.GATE_NOTICES: "auth.notices"}
GATE_OPEN_ENDPOINTS = frozenset({*GATE_PAGES.values(), "auth.sign_out", "static"})


def register_login_manager(app) -> None:
    login_manager.login_view = "auth.sign_in"
    login_manager.session_protection = None  # the server-side session already binds the user
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(_unauthorized)


def _load_user(user_id: str) -> SignedInUser | None:
    """The signed-in account: as the session store read it with the session, else read now."""
    preloaded = getattr(session, "signed_in", None)
    if preloaded is not None and str(preloaded.id) == str(user_id):
        return preloaded
    return load_signed_in_user(int(user_id))


# --- where to go back to after signing in ---------------------------------------------------


def _unauthorized():
    """Not signed in: remember where the user was (and any form they sent), then sign in.

    ``url`` is the page to return to; ``action`` and ``form`` are a form that was posted after
    an idle time-out. The form stays on the server, in the new session, and is only offered
    back to the user whose session timed out, so a time-out never loses what was typed.
    """
    timed_out_user = getattr(session, "timed_out_user_id", None)
    if is_htmx_request():
        # The fragment's URL is not a page; go back to the page the user was looking at.
        url = _same_site_path(request.headers.get("HX-Current-URL", ""))
    elif request.method in ("GET", "HEAD"):
        url = _same_site_path(request.full_path)
    else:
        url = _same_site_path(request.referrer or "")
    resume = {"user_id": timed_out_user, "url": url, "action": None, "form": None}
    if request.method == "POST" and timed_out_user:
        # Secrets are not kept: a password typed into the form has to be typed again.
        fields = [
            (name, value)
            for name, value in request.form.items(multi=True)
            if name != "csrf_token" and "password" not in name.lower()
        ]
        if fields and sum(len(k) + len(v) for k, v in fields) <= MAX_SAVED_FORM_BYTES:
            resume["form"] = fields
            resume["action"] = request.path
    earlier = session.get(RESUME_KEY) or {}
    if not (earlier.get("form") and not resume["form"]):
        # A form saved earlier wins over a later plain page view (another tab, a poll).
        session[RESUME_KEY] = resume
    if timed_out_user:
        flash("Your session timed out. Sign in again to carry on where you were.", "info")
    target = url_for("auth.sign_in")
    if is_htmx_request():
        return Response(status=401, headers={"HX-Redirect": target})
    return redirect(target)


def _same_site_path(url: str) -> str | None:
    """The path and query of ``url`` when it points at this site, else None."""
    parts = urlsplit(url)
    if parts.netloc and parts.netloc != request.host:
        return None
    path = parts.path or "/"
    return path + (f"?{parts.query}" if parts.query else "")


def _log_in(user: User) -> None:
    """Sign the user in on a fresh session id (the old one ends on the server).

    Whatever the anonymous session held is dropped, except the way back: a page to return to,
    and a saved form only for the user it belongs to.
    """
    resume = session.get(RESUME_KEY)
    session.clear()
    session.rotate()
    login_user(user)
    if resume and resume.get("user_id") in (None, user.id):
        if resume.get("user_id") is None:
            resume["form"] = resume["action"] = None
        session[RESUME_KEY] = resume
    gate = services.sign_in_gate(user.id)
    if gate:
        session[GATE_KEY] = gate


def _finish(user: User):
    _log_in(user)
    return _remember_device(redirect(_next_url(user.id)), user)


def _next_url(user_id: int) -> str:
    """Where a signed-in session goes next: the gate's step, else back where it was."""
    gate = session.get(GATE_KEY)
    if gate in GATE_PAGES:
        return url_for(GATE_PAGES[gate])
    resume = session.get(RESUME_KEY) or {}
    if resume.get("form") and resume.get("user_id") == user_id:
        return url_for("auth.resume")
    session.pop(RESUME_KEY, None)
    return safe_local_path(resume.get("url"))


@bp.before_app_request
def hold_at_sign_in_gate():
    """A session whose sign-in left a step to finish (a temporary password to replace,
    notices to read) reaches only that step's page and sign-out: nothing else, and no
    patient data, until it is done."""
    gate = session.get(GATE_KEY)
    if not gate or request.endpoint in GATE_OPEN_ENDPOINTS or not current_user.is_authenticated:
        return None
    target = url_for(GATE_PAGES.get(gate, "auth.choose_password"))
    if is_htmx_request():
        return Response(status=401, headers={"HX-Redirect": target})
    return redirect(target)


def _device_cookie() -> str | None:
    return request.cookies.get(devices.cookie_name())


def _remember_device(response: Response, user: User) -> Response:
    """Give the browser that just signed in a fresh device cookie for this account."""
    value = services.remember_device(user, _device_cookie(), request.remote_addr)
    response.set_cookie(devices.cookie_name(), value, **devices.cookie_options())
    return response


@bp.before_app_request
def forget_resubmitted_form():
    """Once the saved form has been sent again to where it was going, stop offering it."""
    if request.method != "POST" or not session.get(RESUME_KEY):
        return
    saved = session[RESUME_KEY]
    if (
        saved.get("action") == request.path
        and current_user.is_authenticated
        and saved.get("user_id") == current_user.id
    ):
        session.pop(RESUME_KEY, None)


# --- sign-in ---------------------------------------------------------------------------------


def _set_pending(user: User) -> None:
    session[PENDING_KEY] = {"user_id": user.id, "since": utcnow().timestamp()}


def _pending_user() -> User | None:
    """The user who passed the password step in this session, within PENDING_MINUTES."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    if utcnow().timestamp() - float(pending.get("since", 0)) > PENDING_MINUTES * 60:
        session.pop(PENDING_KEY, None)
        return None
    user = db.session.get(User, int(pending["user_id"]))
    return user if user is not None and user.is_enabled else None


@bp.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = SignInForm()
    if form.validate_on_submit():
        result = services.check_password(
            form.username.data, form.password.data, request.remote_addr, _device_cookie()
        )
        if not result.ok:
            form.password.errors.append(SIGN_IN_FAILED)
            return render("auth/sign_in.html", form=form, status=401)
        if result.needs_mfa or result.needs_mfa_enrolment:
            session.pop(ENROL_SECRET_KEY, None)
            session.rotate()  # half signed in is a new privilege level: a new id
            _set_pending(result.user)
            if result.needs_mfa:
                return redirect(url_for("auth.second_factor"))
            return redirect(url_for("auth.enrol_mfa"))
        return _finish(result.user)
    return render("auth/sign_in.html", form=form, status=422 if form.errors else 200)


@bp.route("/second-factor", methods=["GET", "POST"])
@public
def second_factor():
    """The TOTP code, or (in a second form on the page) a one-time recovery code."""
    user = _pending_user()
    if user is None or not user.mfa_enabled:
        return redirect(url_for("auth.sign_in"))
    form = SecondFactorForm()
    recovery_form = RecoveryCodeForm()
    using_recovery = request.method == "POST" and "recovery_code" in request.form
    active = recovery_form if using_recovery else form
    if active.validate_on_submit():
        field = recovery_form.recovery_code if using_recovery else form.code
        if services.check_second_factor(user, field.data, request.remote_addr, _device_cookie()):
            return _finish(user)
        field.errors.append(SECOND_FACTOR_FAILED)
        status = 401
    else:
        status = 422 if active.errors else 200
    return render(
        "auth/second_factor.html",
        form=form,
        recovery_form=recovery_form,
        using_recovery=using_recovery,
        status=status,
    )


@bp.route("/enrol-mfa", methods=["GET", "POST"])
@public
def enrol_mfa():
    """Set up TOTP: during sign-in for roles that require it, or later from the account page."""
    if current_user.is_authenticated:
        user = db.session.get(User, current_user.id)
        if user.mfa_enabled:
            # Replacing a working second factor needs an administrator (reset MFA).
            flash("Two-step sign-in is already on for your account.", "info")
            return redirect(url_for("auth.account"))
    else:
        user = _pending_user()
        if user is None:
            return redirect(url_for("auth.sign_in"))
        if user.mfa_enabled:
            return redirect(url_for("auth.second_factor"))
    stored = session.get(ENROL_SECRET_KEY)
    secret = decrypt_text(stored) if stored else services.start_mfa_enrolment()
    if not stored:
        session[ENROL_SECRET_KEY] = encrypt_text(secret)  # session rows are data at rest too
    form = EnrolmentForm()
    if form.validate_on_submit():
        try:
            codes = services.finish_mfa_enrolment(user, secret, form.code.data, request.remote_addr)
        except Refused as error:
            form.code.errors.append(error.message)
        else:
            session.pop(ENROL_SECRET_KEY, None)
            if current_user.is_authenticated:
                next_url = url_for("auth.account")
            else:
                services.complete_sign_in(
                    user, "password + new TOTP enrolment", request.remote_addr, _device_cookie()
                )
                _log_in(user)
                return _remember_device(
                    render("auth/recovery_codes.html", codes=codes, next_url=_next_url(user.id)),
                    user,
                )
            return render("auth/recovery_codes.html", codes=codes, next_url=next_url)
    # segno's own SVG markup (no user input in it); inline, so it needs no image request.
    qr_svg = segno.make(services.provisioning_uri(user, secret), error="m").svg_inline(
        scale=5,
        svgclass="qr-code",
        lineclass=None,
        light="#fff",  # a white quiet zone: phones read it on any page background
        omitsize=True,  # a viewBox, so CSS can size it without cropping
        title="QR code holding your sign-in key",
    )
    return render(
        "auth/enrol_mfa.html",
        form=form,
        qr_svg=Markup(qr_svg),  # noqa: S704  (segno's own SVG, no user input)
        secret=secret,
        required=services.mfa_required_for(user),
        during_sign_in=not current_user.is_authenticated,
        status=422 if form.errors else 200,
    )


# --- after sign-in ---------------------------------------------------------------------------


@bp.get("/resume")
@require("account.self")
def resume():
    """Offer back a form that was sent after the session timed out."""
    saved = session.get(RESUME_KEY) or {}
    if not saved.get("form") or saved.get("user_id") != current_user.id:
        return redirect(url_for("main.home"))
    return render(
        "auth/resume.html",
        saved=saved,
        action=safe_local_path(saved.get("action")),
        return_url=safe_local_path(saved.get("url")),
    )


@bp.post("/resume/discard")
@require("account.self")
def discard_resume():
    saved = session.pop(RESUME_KEY, None) or {}
    flash("The saved form was discarded.", "info")
    return redirect(safe_local_path(saved.get("url")))


@bp.post("/sign-out")
@require("account.self")
def sign_out():
    services.record_sign_out(current_actor())
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
                db.session.get(User, current_user.id),
                form.current_password.data,
                form.new_password.data,
                request.remote_addr,
            )
        except Refused as error:
            attach_error(form, error)
        else:
            session.rotate()  # this session goes on under a new id; all others ended
            flash("Password changed. Your other sessions were signed out.", "success")
            return redirect(url_for("auth.account"))
    return render(
        "auth/account.html",
        form=form,
        recovery_codes_left=services.unused_recovery_codes(current_user.id),
        mfa_required=services.mfa_required_for(current_user),
        status=422 if form.errors else 200,
    )


# --- the sign-in gate: a temporary password to replace, notices to read ---------------------


@bp.route("/new-password", methods=["GET", "POST"])
@require("account.self")
def choose_password():
    """Replace the temporary password an administrator set, before anything else."""
    if session.get(GATE_KEY) != services.GATE_PASSWORD:
        return redirect(_next_url(current_user.id))
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            services.choose_new_password(
                db.session.get(User, current_user.id), form.new_password.data, request.remote_addr
            )
        except Refused as error:
            attach_error(form, error)
        else:
            session.rotate()  # this session goes on under a new id; all others ended
            session.pop(GATE_KEY, None)
            gate = services.sign_in_gate(current_user.id)
            if gate:
                session[GATE_KEY] = gate
            flash("Your new password is set. Only you know it.", "success")
            return redirect(_next_url(current_user.id))
    return render("auth/new_password.html", form=form, status=422 if form.errors else 200)


@bp.route("/notices", methods=["GET", "POST"])
@require("account.self")
def notices():
    """What others did to the account since its owner last signed in; they acknowledge it."""
    form = AcknowledgeForm()
    if form.validate_on_submit():
        shown = [parse_id(value) for value in request.form.getlist("notice_id")]
        services.acknowledge_notices(current_actor(), [i for i in shown if i is not None])
        if services.sign_in_gate(current_user.id) is None:
            session.pop(GATE_KEY, None)
            return redirect(_next_url(current_user.id))
        # Another notice arrived while this page was open: show it too.
    unread = services.unread_notices(current_user.id)
    if not unread and session.get(GATE_KEY) == services.GATE_NOTICES:
        session.pop(GATE_KEY, None)  # read meanwhile (another tab): nothing holds the way
        return redirect(_next_url(current_user.id))
    return render(
        "auth/notices.html",
        form=form,
        notices=unread,
        sign_ins=services.recent_sign_ins(current_user.id),
        status=400 if form.errors else 200,
    )

"""Admin pages: users and roles, clinic settings.

Thin views: load, authorize (each route declares its permission), call a service, render.
Destructive actions have a confirmation page (GET) whose form does the change (POST), so they
work without JavaScript.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user

from portal.admin import bp
from portal.admin import services as admin_services
from portal.admin.forms import (
    AccountEditForm,
    ConfirmForm,
    DeaNumberForm,
    EpcsApproveForm,
    EpcsProposeForm,
    EpcsWithdrawForm,
    ResetPasswordForm,
    UserCreateForm,
)
from portal.auth import epcs
from portal.auth import services as auth_services
from portal.auth.models import User
from portal.auth.permissions import require
from portal.clinic import services as clinic_services
from portal.clinic.clock import clinic_today
from portal.clinic.forms import ClinicForm, LocationForm, phone_for_input
from portal.transaction import Refused
from portal.web import attach_error as _attach_error
from portal.web import current_actor, render

# --- users ----------------------------------------------------------------------------------


def _status(form) -> int:
    return 422 if form.errors else 200


@bp.get("/users")
@require("users.manage")
def users():
    rows = admin_services.list_users()
    return render(
        "admin/users.html",
        rows=rows,
        # Resets waiting for a second administrator: shown first, or nobody would find them.
        approvals=auth_services.pending_approvals(),
        names={row.user.id: row.user.full_name for row in rows},
    )


@bp.route("/users/new", methods=["GET", "POST"])
@require("users.manage")
def create_user():
    form = UserCreateForm()
    if form.validate_on_submit():
        try:
            user = auth_services.create_user(
                actor=current_actor(),
                username=form.username.data,
                full_name=form.full_name.data,
                email=form.email.data or None,
                roles=form.roles.data,
                password=form.password.data,
                temporary_password=True,
            )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash(
                f"Account {user.username} created. The password is temporary: they choose "
                "their own when they first sign in.",
                "success",
            )
            return redirect(url_for("admin.edit_user", user_id=user.id))
    return render("admin/user_new.html", form=form, status=_status(form))


def _user_page(
    user: User,
    form,
    status: int = 200,
    page_error: str | None = None,
    *,
    dea_form=None,
    epcs_form=None,
):
    approval = auth_services.pending_approval(user.id)
    epcs_status = epcs.status_of(user.id)
    if dea_form is None:
        dea_form = DeaNumberForm(prefix="dea", formdata=None, data={"dea_number": user.dea_number})
    if epcs_form is None:
        epcs_form = EpcsProposeForm(prefix="epcs", formdata=None)
    people = {
        person_id
        for person_id in (
            epcs_status.current.proposed_by_id if epcs_status.current else None,
            epcs_status.current.approved_by_id if epcs_status.current else None,
            epcs_status.waiting.proposed_by_id if epcs_status.waiting else None,
        )
        if person_id
    }
    return render(
        "admin/user_edit.html",
        user=user,
        form=form,
        epcs=epcs_status,
        dea_form=dea_form,
        epcs_form=epcs_form,
        epcs_names={person_id: admin_services.full_name_of(person_id) for person_id in people},
        live_sessions=admin_services.live_session_counts([user.id]).get(user.id, 0),
        mfa_required=auth_services.mfa_required_for(user),
        is_self=user.id == current_user.id,
        mfa_reset_needs_approval=auth_services.mfa_reset_needs_approval(user),
        approval=approval,
        proposer_name=admin_services.full_name_of(approval.proposed_by_id) if approval else None,
        page_error=page_error,
        status=status,
    )


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@require("users.manage")
def edit_user(user_id: int):
    user = admin_services.get_user_or_404(user_id)
    form = AccountEditForm(obj=user)
    if form.validate_on_submit():
        try:
            auth_services.update_user(
                actor=current_actor(),
                user=user,
                full_name=form.full_name.data,
                email=form.email.data or None,
                roles=form.roles.data,
                employment_ends_on=admin_services.bounded_last_day(
                    form.employment_ends_on.data, clinic_today()
                ),
                today=clinic_today(),
                npi=form.npi.data,
            )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash(f"Saved the changes to {user.username}.", "success")
            return redirect(url_for("admin.edit_user", user_id=user.id))
    return _user_page(user, form, status=_status(form))


@bp.route("/users/<int:user_id>/password", methods=["GET", "POST"])
@require("users.manage")
def reset_password(user_id: int):
    """One administrator sets a temporary password; for an account with patient access and
    no second factor, one proposes (``propose``) and a different one approves by setting it
    (``withdraw`` withdraws or declines the proposal)."""
    user = admin_services.get_user_or_404(user_id)
    actor = current_actor()
    needs_approval = auth_services.password_reset_needs_approval(actor, user)
    approval = (
        auth_services.pending_approval(user.id, auth_services.PASSWORD_RESET)
        if needs_approval
        else None
    )
    form = ResetPasswordForm()
    page_error = None
    if needs_approval and request.method == "POST" and request.form.get("step"):
        if not ConfirmForm().validate_on_submit():
            abort(400)
        step = request.form["step"]
        try:
            if step == "propose":
                auth_services.propose_password_reset(actor=actor, user=user)
                message = (
                    f"Password reset proposed for {user.username}: a different "
                    "administrator sets the temporary password when approving it."
                )
            else:
                auth_services.withdraw_password_reset(actor=actor, user=user)
                message = f"The proposed reset of {user.username}'s password was withdrawn."
        except Refused as error:
            page_error = error.message
        else:
            flash(message, "success")
            return redirect(url_for("admin.edit_user", user_id=user.id))
    elif form.validate_on_submit():
        try:
            if needs_approval:
                auth_services.approve_password_reset(
                    actor=actor, user=user, new_password=form.password.data
                )
            else:
                auth_services.reset_password(
                    actor=actor, user=user, new_password=form.password.data
                )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash(
                f"Temporary password set for {user.username}; their sessions were ended. "
                "Give it to them in person or by phone, never by email: they must choose "
                "their own when they next sign in, and are told you reset it.",
                "success",
            )
            return redirect(url_for("admin.edit_user", user_id=user.id))
    return render(
        "admin/reset_password.html",
        user=user,
        form=form,
        is_self=user.id == current_user.id,
        needs_approval=needs_approval,
        approval=approval,
        proposer_name=admin_services.full_name_of(approval.proposed_by_id) if approval else None,
        page_error=page_error,
        status=409 if page_error else _status(form),
    )


# Each confirmed action: the page's wording, and the service call that does it.
CONFIRMED_ACTIONS = {
    "disable": {
        "title": "Disable {name}?",
        "explain": "They can't sign in until an administrator enables the account again, and "
        "every session they have open ends now. Nothing they recorded is removed.",
        "button": "Disable {username}",
        "style": "btn-danger",
        "done": "{username} is disabled; their sessions ended.",
    },
    "reset-mfa": {
        "title": "Reset two-step sign-in for {name}?",
        "explain": "Their authenticator app and recovery codes stop working and their sessions "
        "end. If their role requires two-step sign-in, they set it up again when they next "
        "sign in.",
        "button": "Reset two-step sign-in",
        "style": "btn-danger",
        "done": "Two-step sign-in reset for {username}.",
    },
    # The same button for a prescriber or an administrator: a proposal another admin approves.
    "propose-mfa-reset": {
        "title": "Propose resetting two-step sign-in for {name}?",
        "explain": "Resetting a prescriber's or an administrator's two-step sign-in takes two "
        "administrators. Nothing changes now: a different administrator must approve the "
        "reset from this account's page within a day. Then their authenticator app and "
        "recovery codes stop working, their sessions end and they set it up again at their "
        "next sign-in; they are told who reset it.",
        "button": "Propose the reset",
        "style": "btn-warning",
        "done": "Reset of two-step sign-in proposed for {username}: another administrator "
        "must approve it.",
    },
    "end-sessions": {
        "title": "Sign {name} out everywhere?",
        "explain": "Every session they have open ends now; they must sign in again. Anything "
        "they had not saved is kept only if they sign in again before it expires.",
        "button": "End all sessions",
        "style": "btn-warning",
        "done": "Ended {count} session(s) of {username}.",
    },
}


def _run_confirmed(action: str, user: User) -> dict:
    if action == "disable":
        auth_services.set_user_enabled(actor=current_actor(), user=user, enabled=False)
        return {}
    if action == "reset-mfa":
        auth_services.reset_mfa(actor=current_actor(), user=user)
        return {}
    if action == "propose-mfa-reset":
        auth_services.propose_mfa_reset(actor=current_actor(), user=user)
        return {}
    count = auth_services.end_sessions(actor=current_actor(), user=user)
    return {"count": count}


@bp.route(
    "/users/<int:user_id>/<any('disable', 'reset-mfa', 'end-sessions'):action>",
    methods=["GET", "POST"],
)
@require("users.manage")
def confirm_user_action(user_id: int, action: str):
    """GET: ask; POST: do it. The question names the person and what will happen."""
    url_action = action
    user = admin_services.get_user_or_404(user_id)
    if action == "reset-mfa" and auth_services.mfa_reset_needs_approval(user):
        action = "propose-mfa-reset"
    wording = {
        key: value.format(name=user.full_name, username=user.username, count="")
        if isinstance(value, str)
        else value
        for key, value in CONFIRMED_ACTIONS[action].items()
        if key != "done"
    }
    form = ConfirmForm()
    status = 200
    if form.validate_on_submit():
        try:
            result = _run_confirmed(action, user)
        except Refused as error:
            form.form_errors.append(error.message)
            status = 409
        else:
            flash(
                CONFIRMED_ACTIONS[action]["done"].format(username=user.username, **result),
                "success",
            )
            return redirect(url_for("admin.edit_user", user_id=user.id))
    elif form.errors:
        status = 400
    return render(
        "admin/confirm.html",
        user=user,
        form=form,
        wording=wording,
        action_url=url_for("admin.confirm_user_action", user_id=user.id, action=url_action),
        cancel_url=url_for("admin.edit_user", user_id=user.id),
        status=status,
    )


@bp.post("/users/<int:user_id>/mfa-reset/<any('approve', 'withdraw'):decision>")
@require("users.manage")
def decide_mfa_reset(user_id: int, decision: str):
    """The second administrator approves a proposed reset of two-step sign-in (it happens
    now), or any administrator withdraws it. Refusals show on the account's page."""
    user = admin_services.get_user_or_404(user_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    decide = (
        auth_services.approve_mfa_reset
        if decision == "approve"
        else auth_services.withdraw_mfa_reset
    )
    try:
        decide(actor=current_actor(), user=user)
    except Refused as error:
        return _user_page(user, AccountEditForm(obj=user), status=409, page_error=error.message)
    flash(
        f"Two-step sign-in reset for {user.username}; their sessions ended."
        if decision == "approve"
        else f"The proposed reset of {user.username}'s two-step sign-in was withdrawn.",
        "success",
    )
    return redirect(url_for("admin.edit_user", user_id=user.id))


@bp.post("/users/<int:user_id>/enable")
@require("users.manage")
def enable_user(user_id: int):
    """Enabling takes nothing away, so it needs no confirmation page."""
    user = admin_services.get_user_or_404(user_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        auth_services.set_user_enabled(
            actor=current_actor(), user=user, enabled=True, today=clinic_today()
        )
    except Refused as error:
        return _user_page(user, AccountEditForm(obj=user), status=409, page_error=error.message)
    flash(f"{user.username} is enabled and can sign in again.", "success")
    return redirect(url_for("admin.edit_user", user_id=user.id))


# --- controlled substances (EPCS) -------------------------------------------------------------


@bp.post("/users/<int:user_id>/dea-number")
@require("users.manage")
def set_dea_number(user_id: int):
    """Record, change or remove a prescriber's DEA number (a change ends their EPCS grant)."""
    user = admin_services.get_user_or_404(user_id)
    form = DeaNumberForm(prefix="dea")
    if form.validate_on_submit():
        try:
            warnings = epcs.set_dea_number(
                actor=current_actor(), user=user, number=form.dea_number.data
            )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash(
                f"DEA number of {user.username} saved."
                if form.dea_number.data
                else f"DEA number of {user.username} removed.",
                "success",
            )
            for warning in warnings:
                flash(warning, "warning")
            return redirect(url_for("admin.edit_user", user_id=user.id) + "#epcs-heading")
    return _user_page(user, AccountEditForm(obj=user), status=422, dea_form=form)


@bp.post("/users/<int:user_id>/epcs/<any('propose', 'withdraw'):action>")
@require("users.manage")
def epcs_step(user_id: int, action: str):
    """An administrator proposes a grant or a revoke of controlled-substance signing, or
    withdraws one that waits; either with a fresh code of their own."""
    user = admin_services.get_user_or_404(user_id)
    form = (
        EpcsProposeForm(prefix="epcs") if action == "propose" else EpcsWithdrawForm(prefix="epcs")
    )
    if form.validate_on_submit():
        kind = form.kind.data
        try:
            if action == "propose":
                epcs.propose(
                    actor=current_actor(), user=user, kind=kind, totp_code=form.totp_code.data
                )
            else:
                epcs.withdraw(
                    actor=current_actor(), user=user, kind=kind, totp_code=form.totp_code.data
                )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash(
                (
                    f"Proposed: {user.username} may sign controlled prescriptions once a DEA "
                    "registrant approves it within a day."
                    if kind == "grant"
                    else f"Proposed: {user.username} may no longer sign controlled "
                    "prescriptions. Suspended now; final once a DEA registrant approves it."
                )
                if action == "propose"
                else f"The proposed {kind} for {user.username} was withdrawn.",
                "success",
            )
            return redirect(url_for("admin.edit_user", user_id=user.id) + "#epcs-heading")
    return _user_page(user, AccountEditForm(obj=user), status=422, epcs_form=form)


def _approvals_page(forms: dict | None = None, status: int = 200):
    proposals = epcs.waiting_proposals(current_user.id)
    forms = forms or {}
    for proposal in proposals:
        prefix = f"p{proposal.user.id}"
        if prefix not in forms:
            forms[prefix] = EpcsApproveForm(
                prefix=prefix, formdata=None, data={"kind": proposal.kind}
            )
    return render("admin/epcs_approvals.html", proposals=proposals, forms=forms, status=status)


@bp.get("/epcs")
@require("epcs.approve")
def epcs_approvals():
    """Grants and revokes of controlled-substance signing waiting for a DEA registrant.
    Staff data only (no patient): not audited, like the users' list."""
    return _approvals_page()


@bp.post("/epcs/<int:user_id>/<any('approve', 'withdraw'):decision>")
@require("epcs.approve")
def decide_epcs(user_id: int, decision: str):
    """A DEA registrant approves (password and a fresh code) or declines (a fresh code)."""
    user = admin_services.get_user_or_404(user_id)
    prefix = f"p{user.id}"
    form = EpcsApproveForm(prefix=prefix)
    if decision == "withdraw":
        # Declining asks only for a code: the password field may stay empty.
        form.password.validators = []
    if form.validate_on_submit():
        kind = form.kind.data
        try:
            if decision == "approve":
                epcs.approve(
                    actor=current_actor(),
                    user=user,
                    kind=kind,
                    totp_code=form.totp_code.data,
                    password=form.password.data,
                    verified=form.verified.data,
                )
            else:
                epcs.withdraw(
                    actor=current_actor(), user=user, kind=kind, totp_code=form.totp_code.data
                )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash(
                (
                    f"{user.full_name} may now sign controlled prescriptions."
                    if kind == "grant"
                    else f"{user.full_name} may no longer sign controlled prescriptions."
                )
                if decision == "approve"
                else f"You declined the proposed {kind} for {user.full_name}.",
                "success",
            )
            return redirect(url_for("admin.epcs_approvals"))
    return _approvals_page({prefix: form}, status=422)


# --- clinic settings ------------------------------------------------------------------------


def _clinic_form(clinic, *, from_request: bool = True) -> ClinicForm:
    """The clinic form: what was sent, or (on GET / beside another form) what is saved."""
    form = ClinicForm(obj=clinic) if from_request else ClinicForm(obj=clinic, formdata=None)
    if clinic is not None and not (from_request and form.is_submitted()):
        form.phone.data = phone_for_input(clinic.phone)
    return form


def _clinic_page(clinic_form, location_form, status: int = 200, page_error: str | None = None):
    return render(
        "admin/clinic.html",
        clinic=clinic_services.current_clinic(),
        form=clinic_form,
        location_form=location_form,
        locations=clinic_services.list_locations(),
        page_error=page_error,
        status=status,
    )


@bp.route("/clinic", methods=["GET", "POST"])
@require("clinic.manage")
def clinic_settings():
    clinic = clinic_services.current_clinic()
    form = _clinic_form(clinic)
    if form.validate_on_submit():
        try:
            clinic_services.save_clinic(
                actor=current_actor(),
                name=form.name.data,
                address=form.address.data,
                phone=form.phone.data,
                time_zone=form.time_zone.data,
                temperature_unit=form.temperature_unit.data,
                weight_unit=form.weight_unit.data,
                length_unit=form.length_unit.data,
                date_order=form.date_order.data,
                prescribing_path=form.prescribing_path.data,
            )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash("Clinic settings saved.", "success")
            return redirect(url_for("admin.clinic_settings"))
    return _clinic_page(form, LocationForm(prefix="location", formdata=None), _status(form))


@bp.post("/clinic/locations")
@require("clinic.manage")
def add_location():
    form = LocationForm(prefix="location")
    if form.validate_on_submit():
        try:
            location = clinic_services.create_location(
                actor=current_actor(),
                name=form.name.data,
                address=form.address.data,
                phone=form.phone.data,
            )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash(f"Location {location.name} added.", "success")
            return redirect(url_for("admin.clinic_settings"))
    clinic_form = _clinic_form(clinic_services.current_clinic(), from_request=False)
    return _clinic_page(clinic_form, form, 422)


@bp.route("/clinic/locations/<int:location_id>", methods=["GET", "POST"])
@require("clinic.manage")
def edit_location(location_id: int):
    location = clinic_services.get_location_or_404(location_id)
    form = LocationForm(prefix="location", obj=location)
    if not form.is_submitted():
        form.phone.data = phone_for_input(location.phone)
    if form.validate_on_submit():
        try:
            clinic_services.update_location(
                actor=current_actor(),
                location=location,
                name=form.name.data,
                address=form.address.data,
                phone=form.phone.data,
            )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash(f"Location {location.name} saved.", "success")
            return redirect(url_for("admin.clinic_settings"))
    return render("admin/location_edit.html", location=location, form=form, status=_status(form))


@bp.post("/clinic/locations/<int:location_id>/<any('deactivate', 'activate'):action>")
@require("clinic.manage")
def set_location_active(location_id: int, action: str):
    location = clinic_services.get_location_or_404(location_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        clinic_services.set_location_active(
            actor=current_actor(), location=location, active=action == "activate"
        )
    except Refused as error:
        clinic_form = _clinic_form(clinic_services.current_clinic(), from_request=False)
        empty_location = LocationForm(prefix="location", formdata=None)
        return _clinic_page(clinic_form, empty_location, 409, page_error=error.message)
    flash(
        f"Location {location.name} is {'active' if action == 'activate' else 'inactive'}.",
        "success",
    )
    return redirect(url_for("admin.clinic_settings"))

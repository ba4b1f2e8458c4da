"""The API clients' pages: the list, registering one (its secret shown once, on the page
that answers the form, and never again), a client's page with disable / enable and a new
secret (also shown once).

Thin views: authorize (``api_clients.manage``), call one service of ``portal.fhir.clients``
(each an audited use case), render. No patient data here, so viewing is not audited.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for

from portal.admin import bp
from portal.admin.api_clients.forms import ClientSettingsForm, RegisterClientForm
from portal.admin.forms import ConfirmForm
from portal.auth.permissions import require
from portal.fhir import clients
from portal.fhir.token_endpoint import token_url
from portal.transaction import Refused
from portal.web import attach_error, current_actor, render

PERMISSION = "api_clients.manage"


@bp.get("/api-clients")
@require(PERMISSION)
def api_clients():
    return render("admin/api_clients/index.html", rows=clients.list_clients())


@bp.route("/api-clients/new", methods=["GET", "POST"])
@require(PERMISSION)
def register_api_client():
    form = RegisterClientForm()
    if form.validate_on_submit():
        try:
            registered = clients.register_client(
                current_actor(),
                name=form.name.data,
                responsible_user_id=form.responsible.data,
                scopes=form.scopes.data,
                auth_method=form.auth_method.data,
                public_key=form.public_key.data,
                jwks_url=form.jwks_url.data,
                rate_limit_per_minute=form.rate_limit.data,
            )
        except Refused as error:
            attach_error(form, error)
            return render("admin/api_clients/new.html", form=form, status=error.status)
        # The page answering the form shows the secret: no redirect, so it never sits in
        # a flash message in the session, and the page is never cached (no-store).
        return render(
            "admin/api_clients/secret.html",
            client=registered.client,
            secret=registered.secret,
            token_url=token_url(),
            just_registered=True,
            status=201,
        )
    return render("admin/api_clients/new.html", form=form, status=422 if form.errors else 200)


def _settings_form(client) -> ClientSettingsForm:
    """The client's settings: as typed when the form was sent, else as stored."""
    if request.method == "POST":
        return ClientSettingsForm()
    return ClientSettingsForm(
        data={
            "responsible": client.responsible_user_id,
            "scopes": client.scope_list,
            "rate_limit": client.rate_limit_per_minute,
        }
    )


@bp.route("/api-clients/<int:api_client_id>", methods=["GET", "POST"])
@require(PERMISSION)
def api_client(api_client_id: int):
    """GET: the client's page; POST: save its settings (responsible, scopes, limit, key)."""
    client = clients.get_client(api_client_id)
    form = _settings_form(client)
    status = 200
    if form.validate_on_submit():
        try:
            clients.update_client(
                current_actor(),
                api_client_id,
                responsible_user_id=form.responsible.data,
                scopes=form.scopes.data,
                rate_limit_per_minute=form.rate_limit.data or client.rate_limit_per_minute,
                public_key=form.public_key.data,
                jwks_url=form.jwks_url.data,
            )
        except Refused as error:
            attach_error(form, error)
            status = error.status
        else:
            flash(f"Saved the changes to {client.name}.", "success")
            return redirect(url_for("admin.api_client", api_client_id=api_client_id))
    elif form.errors:
        status = 422
    return render(
        "admin/api_clients/client.html",
        client=clients.get_client(api_client_id),
        token_url=token_url(),
        form=form,
        confirm=ConfirmForm(),
        status=status,
    )


@bp.post("/api-clients/<int:api_client_id>/<any('enable', 'disable'):action>")
@require(PERMISSION)
def set_api_client_enabled(api_client_id: int, action: str):
    clients.get_client(api_client_id)  # 404 first, whatever the form
    if not ConfirmForm().validate_on_submit():
        abort(400)
    client = clients.set_enabled(current_actor(), api_client_id, action == "enable")
    flash(
        f"{client.name} is enabled."
        if client.enabled
        else f"{client.name} is disabled: its tokens no longer work.",
        "success",
    )
    return redirect(url_for("admin.api_client", api_client_id=api_client_id))


@bp.post("/api-clients/<int:api_client_id>/rotate")
@require(PERMISSION)
def rotate_api_client_secret(api_client_id: int):
    client = clients.get_client(api_client_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        secret = clients.rotate_secret(current_actor(), api_client_id)
    except Refused as error:
        flash(error.message, "danger")
        return redirect(url_for("admin.api_client", api_client_id=api_client_id))
    return render(
        "admin/api_clients/secret.html",
        client=client,
        secret=secret,
        token_url=token_url(),
        just_registered=False,
    )

"""Rendering helpers and the response rules every page follows.

- ``render`` answers with the whole page, or only its fragment for an htmx request.
- Every response gets the security headers (CSP with a per-request nonce, nosniff, ...).
- Pages that may show patient data are never cached (``Cache-Control: no-store``).
"""

from __future__ import annotations

import secrets

from flask import Flask, current_app, g, jsonify, make_response, render_template, request, url_for
from flask_login import current_user

from portal.actors import Actor


def is_htmx_request() -> bool:
    """An htmx request for part of a page (boosted requests want the whole page)."""
    return bool(request.htmx) and not request.htmx.boosted


def render(page: str, fragment: str | None = None, status: int = 200, **context):
    """Render ``page``, or just ``fragment`` when htmx asked for a part of the page.

    Responses that depend on HX-Request say so with ``Vary: HX-Request``.
    """
    template = fragment if fragment and is_htmx_request() else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def allow_frame(origin: str) -> None:
    """Let this response's page frame ``origin`` (an enabled connector's embedded screen):
    ``frame-src`` names it for this page only; every other page frames nothing else."""
    g.csp_frame_src = origin


def add_security_headers(response):
    """after_request: the security headers of every response (CSP with this request's
    nonce, no sniffing, no framing by others, no caching of anything that may hold PHI)."""
    nonce = csp_nonce()
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        f"style-src 'self' 'nonce-{nonce}'; "
        "img-src 'self' data:; "
        "font-src 'self'; "
        "connect-src 'self'; "
        f"frame-src {_frame_sources()}; "
        "form-action 'self'; "
        "frame-ancestors 'self'; "
        "object-src 'none'; "
        "base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if current_app.config["HTTPS"]:
        response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    # Anything but static assets may carry patient data: never store it in any cache.
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


def _frame_sources() -> str:
    origin = g.get("csp_frame_src")
    return f"'self' {origin}" if origin else "'self'"


def register_error_pages(app: Flask) -> None:
    """403, 404, 405, 413, 500: pages that tell the user what to do next (JSON for APIs)."""

    def handler(status: int, template: str):
        def handle(error):
            api_error = _api_error_renderer()
            if api_error is not None:
                return api_error(status, error)
            if request.accept_mimetypes.best == "application/json" or request.path.startswith(
                "/api/"
            ):
                return jsonify(error=getattr(error, "name", "Error"), status=status), status
            return render("errors/" + template, status=status, error=error)

        return handle

    for status, template in (
        (400, "400.html"),
        (403, "403.html"),
        (404, "404.html"),
        (405, "400.html"),
        (413, "413.html"),
        (500, "500.html"),
    ):
        app.register_error_handler(status, handler(status, template))


_API_ERRORS = "portal.api_errors"


def register_api_errors(app: Flask, prefix: str, renderer) -> None:
    """Let an API under ``prefix`` answer the errors of its paths in its own format
    (``renderer(status, error)``), also those raised before routing reaches its blueprint
    (a path no route matches): the FHIR API's OperationOutcome rather than an HTML page."""
    app.extensions.setdefault(_API_ERRORS, {})[prefix] = renderer


def _api_error_renderer():
    for prefix, renderer in current_app.extensions.get(_API_ERRORS, {}).items():
        if request.path == prefix or request.path.startswith(prefix + "/"):
            return renderer
    return None


def template_globals() -> dict:
    """Values every template may use (the domains add theirs: ``can``, ``clinic_name``)."""
    return {"csp_nonce": csp_nonce}


def attach_error(form, error) -> None:
    """Put a service's refusal (``message``, optional ``field``) beside the field it names,
    or above the form when it names none."""
    target = getattr(form, error.field, None) if error.field else None
    if target is not None and hasattr(target, "errors"):
        if not isinstance(target.errors, list):
            target.errors = list(target.errors)
        target.errors.append(error.message)
    else:
        form.form_errors.append(error.message)


def current_actor() -> Actor:
    """The signed-in user acting from this request's address: what views hand to services
    (services never read the signed-in user or the request themselves)."""
    return Actor.for_user(current_user, request.remote_addr)


def safe_local_path(path: str | None, default: str | None = None) -> str:
    """A local path to redirect to, else ``default`` (the home page).

    Anything a browser could read as another site ("//host", "/\\host", control characters)
    is refused, so a ``next`` or ``return`` value can never send the user elsewhere.
    """
    if (
        not path
        or not path.startswith("/")
        or path.startswith("//")
        or "\\" in path
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path)
    ):
        return default or url_for("main.home")
    return path

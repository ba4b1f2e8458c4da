"""Response headers on every page, the CSP nonce, and the htmx configuration."""

from __future__ import annotations

import html
import json
import re

import pytest

PAGES_SIGNED_OUT = ["/auth/sign-in", "/no-such-page"]
PAGES_SIGNED_IN = ["/", "/auth/account", "/no-such-page"]


def csp_directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    return directives


def nonce_of(response) -> str:
    match = re.search(r"'nonce-([^']+)'", csp_directives(response)["script-src"])
    assert match, "script-src has no nonce"
    return match.group(1)


def assert_page_headers(response, path):
    headers = response.headers
    policy = headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path
    directives = csp_directives(response)
    assert directives["frame-ancestors"] == "'self'", path
    assert directives["object-src"] == "'none'", path
    assert directives["base-uri"] == "'none'", path
    assert directives["default-src"] == "'self'", path
    assert headers["X-Content-Type-Options"] == "nosniff", path
    assert headers["Referrer-Policy"] == "same-origin", path
    assert "no-store" in headers["Cache-Control"], path
    assert "Strict-Transport-Security" not in headers, path


def test_headers_on_pages_signed_out(client):
    for path in PAGES_SIGNED_OUT:
        assert_page_headers(client.get(path), path)


def test_headers_on_pages_signed_in(signed_in):
    browser = signed_in("admin")
    for path in PAGES_SIGNED_IN:
        assert_page_headers(browser.get(path), path)


def test_headers_on_redirects_and_errors(client):
    assert_page_headers(client.get("/"), "/ (redirect to sign-in)")
    assert_page_headers(client.post("/auth/sign-out"), "CSRF failure")


def test_the_nonce_differs_between_requests_and_matches_the_scripts(client):
    first, second = client.get("/auth/sign-in"), client.get("/auth/sign-in")
    assert nonce_of(first) != nonce_of(second)
    page = first.get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts
    for tag in scripts:
        assert f'nonce="{nonce_of(first)}"' in tag, tag


def test_static_files_may_be_cached(client):
    response = client.get("/static/css/portal.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_only_with_https(app, client):
    assert "Strict-Transport-Security" not in client.get("/auth/sign-in").headers
    app.config["HTTPS"] = True
    response = app.test_client().get("/auth/sign-in", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(re.search(r"max-age=(\d+)", response.headers["Strict-Transport-Security"])[1]) >= (
        180 * 24 * 3600
    )


def test_htmx_is_configured_for_a_strict_csp(client):
    page = client.get("/auth/sign-in").get_data(as_text=True)
    match = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page)
    assert match, "base.html has no htmx-config meta"
    config = json.loads(html.unescape(match.group(1)))
    assert config["allowEval"] is False
    assert config["selfRequestsOnly"] is True
    assert config["historyCacheSize"] == 0


@pytest.mark.parametrize(
    "path", ["/auth/sign-in", "/auth/account", "/auth/enrol-mfa", "/"], ids=str
)
def test_pages_have_no_inline_styles_or_handlers(signed_in, path):
    page = signed_in("nurse").get(path).get_data(as_text=True)
    assert not re.search(r"\sstyle=", page), "style attributes are blocked by the CSP"
    assert not re.search(r"\son[a-z]+=", page), "inline event handlers are blocked by the CSP"
    assert "<style" not in page

"""Private-key clients that publish their keys at a ``jwks_url``: the token endpoint fetches
the JWKS from a live HTTP server on loopback, caches it by ``kid`` and ``max-age``, follows
a key rotation, answers 401 ``invalid_client`` saying why when the JWKS cannot be read (down,
slow, an error, not a JWKS, a redirect, too large), and never fetches from a non-public
address (the SSRF guard)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import update

from portal import actors
from portal.audit.services import record
from portal.extensions import db
from portal.fhir import jwks
from portal.fhir.models import ApiClient
from portal.transaction import Refused, use_case
from tests.fhir.support import (
    FORM,
    TOKEN_PATH,
    assertion_form,
    client_assertion,
    jwks_of,
    make_api_client,
)
from tests.support.audit import audit_events


class JwksServer:
    """A client's key server: serves ``document`` at /jwks.json (with ``headers``), or
    misbehaves as ``mode`` says; counts the requests it answered."""

    def __init__(self):
        self.document = {"keys": []}
        self.headers = {"Cache-Control": "max-age=300"}
        self.mode = "serve"
        self.hits = 0
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits += 1
                if server.mode == "slow":
                    time.sleep(1.5)
                if server.mode == "hang":  # until the test lets it answer
                    server.release.wait(10)
                if server.mode == "trickle":  # a valid answer, one byte at a time
                    body = json.dumps(server.document).encode() + b" " * 200
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        for byte in body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.05)
                    return
                if server.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                if server.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.end_headers()
                    return
                body = json.dumps(server.document).encode()
                if server.mode == "html":
                    body = b"<html>not here</html>"
                if server.mode == "huge":
                    body = b'{"keys": [' + b" " * (jwks.MAX_BYTES + 10) + b"]}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                for name, value in server.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def publish(self, *keys: tuple[object, str, str]) -> None:
        """Publish the public halves of (private key, kid, algorithm)."""
        entries = [json.loads(jwks_of(key, kid, alg))["keys"][0] for key, kid, alg in keys]
        self.document = {"keys": entries}


@pytest.fixture
def key_server(app):
    app.config["FHIR_JWKS_ALLOW_HTTP_LOOPBACK"] = True
    app.config["FHIR_JWKS_TIMEOUT_SECONDS"] = 0.5
    server = JwksServer()
    server.thread.start()
    yield server
    server.release.set()
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture(scope="module")
def keys():
    return {
        "k1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "k2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "e1": ec.generate_private_key(ec.SECP384R1()),
    }


def _token(client, client_id: str, key, kid: str, algorithm: str = "RS384"):
    assertion = client_assertion(key, client_id, algorithm, kid=kid, jti=uuid.uuid4().hex)
    return client.post(TOKEN_PATH, data=assertion_form(assertion), content_type=FORM)


def _refused_saying(response, words: str) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == "invalid_client"
    assert "jwks_url" in body["error_description"] and words in body["error_description"]


def test_keys_are_fetched_once_and_cached(app, client, key_server, keys):
    key_server.publish((keys["k1"], "k1", "RS384"), (keys["e1"], "e1", "ES384"))
    client_id, secret = make_api_client(app, method="private_key_jwt", jwks_url=key_server.url)
    assert secret is None
    for _ in range(3):
        assert _token(client, client_id, keys["k1"], "k1").status_code == 200
    assert _token(client, client_id, keys["e1"], "e1", "ES384").status_code == 200
    assert key_server.hits == 1  # every kid was in the cached document


def test_a_rotated_key_is_fetched_when_its_kid_is_first_seen(app, client, key_server, keys):
    key_server.publish((keys["k1"], "k1", "RS384"))
    client_id, _ = make_api_client(app, method="private_key_jwt", jwks_url=key_server.url)
    assert _token(client, client_id, keys["k1"], "k1").status_code == 200
    # The client rotates: k2 published, k1 withdrawn.
    key_server.publish((keys["k2"], "k2", "RS384"))
    assert _token(client, client_id, keys["k2"], "k2").status_code == 200
    assert key_server.hits == 2
    # The withdrawn key no longer signs, and an unknown kid does not fetch again at once.
    refused = _token(client, client_id, keys["k1"], "k1")
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    assert _token(client, client_id, keys["k1"], "made-up").status_code == 401
    assert key_server.hits == 2


def test_the_cache_lasts_the_documents_max_age(app, key_server, keys):
    key_server.publish((keys["k1"], "k1", "RS384"))
    key_server.headers = {"Cache-Control": "public, max-age=120"}
    with app.app_context():
        jwks.keys_for(key_server.url, "k1", now=1000.0)
        jwks.keys_for(key_server.url, "k1", now=1119.0)
        assert key_server.hits == 1
        jwks.keys_for(key_server.url, "k1", now=1121.0)
        assert key_server.hits == 2
        # Without max-age: five minutes; a max-age of a second is held a minute at least.
        key_server.headers = {"Cache-Control": "max-age=1"}
        jwks.keys_for(key_server.url, "k1", now=2000.0)
        jwks.keys_for(key_server.url, "k1", now=2059.0)
        assert key_server.hits == 3


@pytest.mark.parametrize(
    "mode, words",
    [
        ("error", "HTTP 500"),
        ("slow", "did not answer within 0.5 seconds"),
        ("html", "not JSON"),
        ("redirect", "HTTP 302"),
        ("huge", "larger than"),
        ("no keys", "no RSA or EC public key"),
    ],
)
def test_a_jwks_that_cannot_be_read_is_invalid_client_saying_why(
    app, client, key_server, keys, mode, words
):
    key_server.publish((keys["k1"], "k1", "RS384"))
    client_id, _ = make_api_client(
        app, method="private_key_jwt", jwks_url=key_server.url, name=f"Key client {mode}"
    )
    key_server.mode = mode
    if mode == "no keys":
        key_server.mode, key_server.document = "serve", {"keys": [{"kty": "oct", "k": "abc"}]}
    started = time.monotonic()
    _refused_saying(_token(client, client_id, keys["k1"], "k1"), words)
    assert time.monotonic() - started < 1.4  # the timeout, not the server, decided
    (event,) = audit_events(app, "fhir.token_refused")
    assert event.username == f"api:Key client {mode}"
    assert event.detail == "invalid_client: jwks unavailable"
    # Asked again at once, the same answer, remembered rather than fetched.
    hits = key_server.hits
    _refused_saying(_token(client, client_id, keys["k1"], "k1"), words)
    assert key_server.hits == hits
    # Once it serves again (and the failure is forgotten), the client gets its token.
    _forget_failures(app)
    key_server.mode = "serve"
    key_server.publish((keys["k1"], "k1", "RS384"))
    assert _token(client, client_id, keys["k1"], "k1").status_code == 200


def _forget_failures(app) -> None:
    app.extensions["fhir.jwks"][1].clear()


def _disable(app, client_id: str) -> None:
    with app.app_context(), use_case():
        db.session.execute(
            update(ApiClient).where(ApiClient.client_id == client_id).values(enabled=False)
        )


def test_a_disabled_client_never_makes_the_portal_fetch(app, client, key_server, keys):
    key_server.publish((keys["k1"], "k1", "RS384"))
    client_id, _ = make_api_client(app, method="private_key_jwt", jwks_url=key_server.url)
    _disable(app, client_id)
    for _ in range(2):
        response = _token(client, client_id, keys["k1"], "k1")
        assert response.status_code == 401
        assert response.get_json()["error_description"] == "This client is disabled."
    assert key_server.hits == 0


def test_a_failing_url_is_fetched_once_within_the_window(app, client, key_server, keys):
    client_id, _ = make_api_client(app, method="private_key_jwt", jwks_url=key_server.url)
    key_server.mode = "error"
    for _ in range(3):
        _refused_saying(_token(client, client_id, keys["k1"], "k1"), "HTTP 500")
    assert key_server.hits == 1
    # The window over, the next request fetches again.
    key_server.mode = "serve"
    key_server.publish((keys["k1"], "k1", "RS384"))
    with app.app_context():
        later = time.monotonic() + jwks.FAILED_FOR + 1
        assert jwks.keys_for(key_server.url, "k1", now=later)
    assert key_server.hits == 2


def test_a_trickling_server_is_cut_at_the_total_deadline(app, client, key_server, keys):
    """Each byte comes well within the per-read timeout; the whole body would take ~15 s."""
    key_server.publish((keys["k1"], "k1", "RS384"))
    client_id, _ = make_api_client(app, method="private_key_jwt", jwks_url=key_server.url)
    key_server.mode = "trickle"
    started = time.monotonic()
    _refused_saying(_token(client, client_id, keys["k1"], "k1"), "within 0.5 seconds")
    assert time.monotonic() - started < 1.4


def test_a_hanging_jwks_server_does_not_hold_up_other_writers(app, key_server, keys):
    """While a token request waits on the client's server, a use case elsewhere in the
    portal commits at once (on SQLite: the write lock is not held during the fetch; the
    fetch may take 5 s, the bound leaves room for a loaded machine)."""
    app.config["FHIR_JWKS_TIMEOUT_SECONDS"] = 5
    key_server.publish((keys["k1"], "k1", "RS384"))
    client_id, _ = make_api_client(app, method="private_key_jwt", jwks_url=key_server.url)
    key_server.mode = "hang"
    answers = []

    def ask() -> None:
        answers.append(_token(app.test_client(), client_id, keys["k1"], "k1"))

    asking = threading.Thread(target=ask)
    asking.start()
    try:
        deadline = time.monotonic() + 30  # generous for a loaded machine; ends at the hit
        while key_server.hits == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert key_server.hits == 1  # the token request is now stuck on the fetch
        started = time.monotonic()
        with app.app_context(), use_case():
            record(actors.anonymous(None), "test.elsewhere", category="test")
        waited = time.monotonic() - started
        assert asking.is_alive()  # still stuck: the write did not wait for it
        assert waited < 2.5, f"a writer waited {waited:.2f}s on the JWKS fetch"
    finally:
        key_server.mode = "serve"
        key_server.release.set()
        asking.join(10)
    assert answers[0].status_code == 200, answers[0].get_data(as_text=True)


def test_a_server_that_is_down_is_invalid_client(app, client, key_server, keys):
    client_id, _ = make_api_client(app, method="private_key_jwt", jwks_url=key_server.url)
    key_server.httpd.shutdown()
    key_server.httpd.server_close()
    _refused_saying(_token(client, client_id, keys["k1"], "k1"), "could not be reached")


@pytest.mark.parametrize(
    "url, words",
    [
        ("https://127.0.0.1:9/jwks.json", "not a public address"),  # loopback
        ("https://10.1.2.3/jwks.json", "not a public address"),  # private
        ("https://169.254.169.254/latest/meta-data/", "not a public address"),  # metadata
        ("https://[::1]/jwks.json", "not a public address"),
        ("https://no-such-host.invalid/jwks.json", "does not resolve"),
    ],
)
def test_no_fetch_from_an_address_that_is_not_public(app, client, keys, url, words):
    """https to anything but a public address is refused before any connection (here with
    loopback http off, as in production)."""
    client_id, _ = make_api_client(app, method="private_key_jwt", jwks_url=url)
    _refused_saying(_token(client, client_id, keys["k1"], "k1"), words)


@pytest.mark.parametrize(
    "url, allow_loopback",
    [
        ("http://example.org/jwks.json", True),  # plain http elsewhere: never
        ("http://127.0.0.1:8000/jwks.json", False),  # on loopback: only when allowed
        ("ftp://example.org/jwks.json", True),
        ("https://user:pw@example.org/jwks.json", True),
        ("not a url", True),
    ],
)
def test_registration_refuses_urls_that_are_not_https(app, url, allow_loopback):
    app.config["FHIR_JWKS_ALLOW_HTTP_LOOPBACK"] = allow_loopback
    with pytest.raises(Refused) as refused:
        make_api_client(app, method="private_key_jwt", jwks_url=url)
    assert refused.value.field == "jwks_url"


def test_a_key_and_a_url_together_are_refused(app, keys):
    with pytest.raises(Refused) as refused:
        make_api_client(
            app,
            method="private_key_jwt",
            public_key=jwks_of(keys["k1"], "k1", "RS384"),
            jwks_url="https://example.org/jwks.json",
        )
    assert refused.value.field == "jwks_url"

"""Public keys a private-key API client publishes at a URL (SMART Backend Services' ``jwks_url``),
fetched by the token endpoint and cached.

A client registered with a ``jwks_url`` rotates its keys by publishing a new JWKS: the token
endpoint reads the keys from the cache while it holds the assertion's ``kid``, and fetches the
document again when it expires (its ``Cache-Control: max-age``, between one minute and an
hour; five minutes without one) or when an assertion names a ``kid`` the cached document
lacks (a new key); such a fetch at most once every ``REFETCH_AFTER_MISS`` seconds per URL,
so that assertions with made-up kids cannot make the portal hammer the client's server.

The fetch is an outbound request to an address an administrator typed, made when anyone
presents an assertion, so it is guarded against being turned on the portal's own network
(server-side request forgery):

- ``https`` only. Plain ``http`` is accepted for loopback addresses alone, and only where
  ``FHIR_JWKS_ALLOW_HTTP_LOOPBACK`` is on (tests and local development: a JWKS served by
  a process on the same machine); it is off by default.
- The host's addresses are resolved before the request and every one must be a public
  (global) address: no private, loopback, link-local (cloud metadata), multicast or
  reserved address, except loopback under the setting above.
- Redirects are not followed; the answer is at most ``MAX_BYTES``; the whole fetch
  (connect, headers and body) has one deadline (``FHIR_JWKS_TIMEOUT_SECONDS``, 3 s by
  default), so a server trickling bytes cannot keep a request waiting past it.
- A failed fetch is remembered for ``FAILED_FOR`` seconds per URL: meanwhile the same
  reason is given again without fetching, so a client whose server is down (or slow)
  cannot make every one of its token requests wait on it again.

The token endpoint calls this outside any write transaction (see ``portal.fhir.clients``):
on SQLite a use case holds the database's write lock for the whole portal.

Left: the name is resolved again by the HTTP library when it connects, so a DNS server that
answers differently within that instant (DNS rebinding) is not stopped here; a deployment
that needs that too sends outbound traffic through an egress proxy that applies the same
rule.

The cache is per process (each API process fetches once per expiry): it holds only public
keys, and a fetch costs one small request.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from flask import current_app

MAX_BYTES = 64 * 1024
DEFAULT_MAX_AGE = 300
MIN_MAX_AGE = 60
MAX_MAX_AGE = 3600
REFETCH_AFTER_MISS = 10  # seconds between two fetches a kid miss may cause
FAILED_FOR = 10  # seconds a failed fetch is answered from memory
READ_SIZE = 1024  # bytes per read, so the deadline is checked while a body trickles in
URL_MAX = 500
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d{1,9})")


class JwksUnavailable(Exception):
    """The client's JWKS could not be read; ``reason`` says why in words a client's
    developer can act on (no key material, no internal address)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Fetched:
    keys: list  # (kid, public key)
    expires_at: float
    # When an unknown kid last made it fetch (None: fetched because it had to).
    missed_at: float | None = None


def public_keys(text: str) -> list[tuple[str | None, object]]:
    """(kid, public key) of each RSA or EC key in a JWKS (or one JWK) or a PEM public key;
    ``ValueError`` in words an admin can act on."""
    if not text:
        raise ValueError("Paste the client's public key: a JWKS or a PEM public key.")
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ValueError("The key is not valid JSON (a JWKS or a JWK).") from error
        entries = document.get("keys") if isinstance(document, dict) else None
        if entries is None:
            entries = [document]
        found = []
        for entry in entries if isinstance(entries, list) else []:
            try:
                jwk = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError):
                continue
            if isinstance(jwk.key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                found.append((entry.get("kid"), jwk.key))
        if not found:
            raise ValueError("The JWKS holds no RSA or EC public key.")
        return found
    try:
        key = load_pem_public_key(text.encode())
    except ValueError as error:
        raise ValueError("The key is neither a JWKS nor a PEM public key.") from error
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("Only RSA and EC public keys are accepted.")
    return [(None, key)]


def _allow_http_loopback() -> bool:
    return bool(current_app.config.get("FHIR_JWKS_ALLOW_HTTP_LOOPBACK"))


def check_url(url: str) -> str:
    """The URL, stripped, when its form is acceptable (scheme, host, no credentials);
    ``ValueError`` in words an administrator can act on. The addresses are checked when it
    is fetched."""
    url = (url or "").strip()
    if not url or len(url) > URL_MAX:
        raise ValueError(f"Give the JWKS URL (at most {URL_MAX} characters).")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("The JWKS URL must be an https:// address.")
    if parts.username or parts.password:
        raise ValueError("The JWKS URL cannot carry a user name or password.")
    if parts.scheme == "http" and not (_allow_http_loopback() and _names_loopback(parts.hostname)):
        raise ValueError("The JWKS URL must be an https:// address.")
    return url


def _names_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_addresses(url: str) -> None:
    parts = urlsplit(url)
    try:
        found = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as error:
        raise JwksUnavailable("its host name does not resolve") from error
    loopback_ok = _allow_http_loopback()
    for _family, _type, _proto, _name, address in found:
        ip = ipaddress.ip_address(address[0].split("%")[0])
        if ip.is_global or (loopback_ok and ip.is_loopback):
            continue
        raise JwksUnavailable("its host is not a public address")


def _max_age(response: requests.Response) -> int:
    found = _MAX_AGE.search(response.headers.get("Cache-Control", ""))
    if found is None:
        return DEFAULT_MAX_AGE
    return min(max(int(found.group(1)), MIN_MAX_AGE), MAX_MAX_AGE)


def fetch(url: str) -> tuple[list, int]:
    """(the keys, seconds to keep them) read from ``url`` now; ``JwksUnavailable``."""
    try:
        check_url(url)
    except ValueError as error:
        raise JwksUnavailable(str(error)) from error
    _check_addresses(url)
    timeout = float(current_app.config.get("FHIR_JWKS_TIMEOUT_SECONDS", 3))
    body, max_age = _download(url, timeout)
    try:
        document = json.loads(body)
    except ValueError as error:
        raise JwksUnavailable("the document is not JSON") from error
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksUnavailable('the document is not a JWKS (no "keys" list)')
    try:
        return public_keys(json.dumps(document)), max_age
    except ValueError as error:
        raise JwksUnavailable("the document holds no RSA or EC public key") from error


def _download(url: str, timeout: float) -> tuple[bytes, int]:
    """The body and max-age read from ``url`` within ``timeout`` seconds in all.

    requests' timeouts are per socket operation: a server sending a byte now and then never
    trips them. So the request runs in a thread the caller waits for until the deadline;
    the thread itself stops at its next read after the deadline (each read is bounded by
    the same timeout), so it outlives the caller's wait by at most one read."""
    deadline = time.monotonic() + timeout
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["done"] = _read(url, timeout, deadline)
        except JwksUnavailable as error:
            outcome["error"] = error
        except requests.Timeout:
            outcome["error"] = _too_slow(timeout)
        except requests.RequestException:
            outcome["error"] = JwksUnavailable("it could not be reached")

    worker = threading.Thread(target=run, name="jwks-fetch", daemon=True)
    worker.start()
    worker.join(max(deadline - time.monotonic(), 0))
    if worker.is_alive():
        raise _too_slow(timeout)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["done"]


def _too_slow(timeout: float) -> JwksUnavailable:
    return JwksUnavailable(f"it did not answer within {timeout:g} seconds")


def _read(url: str, timeout: float, deadline: float) -> tuple[bytes, int]:
    with requests.get(
        url,
        timeout=(timeout, timeout),
        allow_redirects=False,
        stream=True,
        headers={"Accept": "application/jwk-set+json, application/json"},
    ) as response:
        if response.status_code != 200:
            raise JwksUnavailable(f"it answered HTTP {response.status_code}")
        body = b""
        for piece in response.iter_content(READ_SIZE):
            body += piece
            if len(body) > MAX_BYTES:
                raise JwksUnavailable(f"the document is larger than {MAX_BYTES} bytes")
            if time.monotonic() > deadline:
                raise _too_slow(timeout)
        return body, _max_age(response)


def keys_for(url: str, kid: str | None, now: float | None = None) -> list:
    """The client's keys for an assertion naming ``kid``: from the cache while it is fresh
    and holds that kid, else fetched (see the module's notes); a fetch that failed less
    than ``FAILED_FOR`` seconds ago fails again without fetching. ``JwksUnavailable``."""
    now = time.monotonic() if now is None else now
    cache, failed, lock = _cache()
    cached = cache.get(url)
    missed_at = None
    if cached is not None and now < cached.expires_at:
        if _holds(cached.keys, kid):
            return cached.keys
        if cached.missed_at is not None and now - cached.missed_at < REFETCH_AFTER_MISS:
            return cached.keys  # fetched for an unknown kid a moment ago: not again yet
        missed_at = now
    failure = failed.get(url)
    if failure is not None and now < failure[0]:
        raise JwksUnavailable(failure[1])
    try:
        keys, max_age = fetch(url)
    except JwksUnavailable as error:
        with lock:
            failed[url] = (now + FAILED_FOR, error.reason)
        raise
    with lock:
        failed.pop(url, None)
        cache[url] = _Fetched(keys, now + max_age, missed_at)
    return keys


def _holds(keys: list, kid: str | None) -> bool:
    return kid is None or any(key_id is None or key_id == kid for key_id, _key in keys)


def _cache() -> tuple[dict, dict, threading.Lock]:
    """This app's cache of documents and of failed fetches (url: (until, reason)), an
    app's own, so a test's app starts with none."""
    found = current_app.extensions.get("fhir.jwks")
    if found is None:
        found = current_app.extensions.setdefault("fhir.jwks", ({}, {}, threading.Lock()))
    return found

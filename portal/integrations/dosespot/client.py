"""DoseSpot API v2 over HTTP (DOSESPOT.md section 3): the token grant, the calls, and what
their answers mean to the outbox.

- One ``requests.Session`` per client and a timeout on every call: a worker must never hang
  on a vendor.
- Tokens are bound to a clinician and live about ten minutes. They are cached in the process
  (the connector object is made afresh for each use, so the cache cannot live on it), keyed by
  the API, the clinic, a digest of its credentials (new credentials never reuse an old token)
  and the clinician, and reused until shortly before they expire. A 401 means DoseSpot
  forgot or expired the token early: one fresh token, one retry.
- DoseSpot answers business errors with HTTP 200 and ``Result.ResultCode: ERROR``, so every
  answer's ``Result`` is checked, not only its status.
- What the outbox should do follows from the kind of error: ``TransientError`` (429 with its
  ``Retry-After``, 5xx, no answer) is tried again later; ``PermanentError`` (DoseSpot refused
  the call as it is) is not.

Error messages are logged and kept with outbox messages, so they carry no patient data and
no secret. DoseSpot's ``ResultDescription`` is written for the integrator and names fields and
rules, but nothing stops it from quoting a value sent (a name, a phone, a date): the message
keeps a shortened description with quoted text, e-mail addresses and runs of digits masked
(``safe_description``); the description as DoseSpot wrote it stays on the exception
(``DoseSpotRefused.description``) for a screen shown to someone who may see the patient.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from portal.integrations.base import PermanentError, TransientError

API_PATH = "/webapi/v2"
DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
REFRESH_MARGIN = 60.0  # seconds before expiry a cached token is replaced
MAX_PAGES = 50  # a list longer than this is refused rather than read forever
DESCRIPTION_MAX_CHARS = 200


class Unreachable(TransientError):
    """No answer at all from the configured address (refused, unknown host, timed out)."""


class NotDoseSpot(PermanentError):
    """Something answered, but not as DoseSpot does (an HTML page, a 404 on a known path):
    most likely the API base URL is wrong."""


class TokenRefused(PermanentError):
    """The token endpoint refused the grant. ``error`` is the OAuth error code
    (``invalid_client``: clinic id or key; ``invalid_grant``: the clinician) or
    ``subscription`` when the API gateway refused the subscription key."""

    def __init__(self, message: str, error: str):
        super().__init__(message)
        self.error = error


class DoseSpotRefused(PermanentError):
    """``Result.ResultCode`` was not OK. ``str()`` is safe to log; ``description`` is
    DoseSpot's own words, which may quote patient data."""

    def __init__(self, message: str, description: str = "", result_code: str = ""):
        super().__init__(message)
        self.description = description
        self.result_code = result_code


def safe_description(text: Any) -> str:
    """DoseSpot's ResultDescription with what could be patient data masked, shortened."""
    value = str(text or "")
    value = re.sub(r"\"[^\"]*\"|'[^']*'", "'…'", value)
    value = re.sub(r"\S+@\S+", "[e-mail]", value)
    value = re.sub(r"\d[\d/.:\-]{2,}", "#", value)
    value = " ".join(value.split())
    if len(value) > DESCRIPTION_MAX_CHARS:
        value = value[: DESCRIPTION_MAX_CHARS - 1] + "…"
    return value


def retry_after_seconds(header: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@dataclass
class _Token:
    value: str
    good_until: float  # on the cache's clock


class TokenCache:
    """Tokens by (API, clinic, credentials digest, clinician), shared by every thread of the
    process. One lock per key makes concurrent callers wait for one grant instead of each
    asking DoseSpot for its own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple, _Token] = {}
        self._grant_locks: dict[tuple, threading.Lock] = {}

    def get(self, key: tuple) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.good_until <= self._clock():
                return None
            return token.value

    def put(self, key: tuple, value: str, lifetime: float) -> None:
        # Renew a minute early, or a tenth of the lifetime early for short-lived tokens
        # (DoseSpot's live ten minutes; a sandbox can be told to make them last seconds).
        margin = min(REFRESH_MARGIN, lifetime / 10)
        with self._lock:
            self._tokens[key] = _Token(value, self._clock() + max(0.0, lifetime - margin))

    def forget(self, key: tuple, value: str) -> None:
        """Drop ``value`` if it is still the cached token (not a fresher one)."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.value == value:
                del self._tokens[key]

    def grant_lock(self, key: tuple) -> threading.Lock:
        with self._lock:
            return self._grant_locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKENS = TokenCache()


def api_root(api_base_url: str) -> str:
    """``{api_base}/webapi/v2``, whether or not the configured URL already ends with it."""
    base = api_base_url.rstrip("/")
    return base if base.lower().endswith(API_PATH) else base + API_PATH


class DoseSpotClient:
    """Calls DoseSpot on behalf of one clinic; each call names the clinician it acts as."""

    def __init__(
        self,
        api_base_url: str,
        clinic_id: str | int,
        clinic_key: str,
        subscription_key: str,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        tokens: TokenCache = TOKENS,
    ):
        self.root = api_root(api_base_url)
        self.clinic_id = str(clinic_id)
        self._clinic_key = clinic_key
        self._subscription_key = subscription_key
        self.timeout = timeout
        self.tokens = tokens
        self.session = requests.Session()
        self._credentials = hashlib.sha256(
            f"{self.clinic_id}\0{clinic_key}\0{subscription_key}".encode()
        ).hexdigest()

    def close(self) -> None:
        self.session.close()

    # Tokens ----------------------------------------------------------------------------

    def _key(self, clinician_id: str | int) -> tuple:
        return (self.root, self.clinic_id, self._credentials, str(clinician_id))

    def token(self, clinician_id: str | int, *, stale: str | None = None) -> str:
        """A live token for the clinician: the cached one, or a new grant. ``stale`` is a token
        DoseSpot just refused; it is not handed out again."""
        key = self._key(clinician_id)
        cached = self.tokens.get(key)
        if cached and cached != stale:
            return cached
        with self.tokens.grant_lock(key):
            cached = self.tokens.get(key)  # another thread may have got one meanwhile
            if cached and cached != stale:
                return cached
            value, lifetime = self._grant(clinician_id)
            self.tokens.put(key, value, lifetime)
            return value

    def _grant(self, clinician_id: str | int) -> tuple[str, float]:
        form = {
            "grant_type": "password",
            "client_id": self.clinic_id,
            "client_secret": self._clinic_key,
            "username": str(clinician_id),
            "password": self._clinic_key,
            "scope": "api",
        }
        headers = {"Subscription-Key": self._subscription_key, "Accept": "application/json"}
        answer = self._http("POST", f"{self.root}/connect/token", data=form, headers=headers)
        self._raise_for_transient(answer)
        body = _json_or_none(answer)
        if answer.status_code in (401, 403):
            # An API gateway in front of the token service refuses a bad subscription key
            # before any OAuth check is made.
            raise TokenRefused("DoseSpot refused the subscription key.", "subscription")
        if answer.status_code == 400 and isinstance(body, dict) and body.get("error"):
            error = str(body["error"])
            if not re.fullmatch(r"[a-z_]{1,40}", error):
                error = "refused"
            raise TokenRefused(f"DoseSpot refused the token request ({error}).", error)
        if answer.status_code != 200 or not isinstance(body, dict):
            raise NotDoseSpot(f"The token endpoint answered HTTP {answer.status_code}.")
        value = body.get("access_token")
        if not value:
            raise NotDoseSpot("The token endpoint answered without a token.")
        try:
            lifetime = float(body.get("expires_in") or 0)
        except (TypeError, ValueError):
            lifetime = 0.0
        return str(value), lifetime

    # Calls -----------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        clinician_id: str | int,
        *,
        params: dict | None = None,
        body: dict | None = None,
    ) -> dict:
        """One API call as the clinician (``path`` under ``/webapi/v2/``); the answer's JSON
        once its ``Result`` is OK."""
        url = f"{self.root}/{path.lstrip('/')}"
        token = self.token(clinician_id)
        answer = self._authorized(method, url, token, params, body)
        if answer.status_code == 401:
            token = self.token(clinician_id, stale=token)
            answer = self._authorized(method, url, token, params, body)
            if answer.status_code == 401:
                self.tokens.forget(self._key(clinician_id), token)
                raise PermanentError("DoseSpot refused a freshly granted token (HTTP 401).")
        return self._checked(answer)

    def get(self, path: str, clinician_id: str | int, **params: Any) -> dict:
        return self.call("GET", path, clinician_id, params=_present(params))

    def post(self, path: str, clinician_id: str | int, body: dict | None = None) -> dict:
        return self.call("POST", path, clinician_id, body=body or {})

    def put(self, path: str, clinician_id: str | int, body: dict) -> dict:
        return self.call("PUT", path, clinician_id, body=body)

    def get_all(
        self, path: str, clinician_id: str | int, *, max_pages: int = MAX_PAGES, **params: Any
    ) -> list[dict]:
        """Every item of a paged list, following ``PageResult.HasNext`` page by page."""
        items: list[dict] = []
        number = 1
        while True:
            answer = self.get(path, clinician_id, pageNumber=number, **params)
            items.extend(item for item in answer.get("Items") or [] if isinstance(item, dict))
            paging = answer.get("PageResult") or {}
            if not paging.get("HasNext"):
                return items
            current = paging.get("CurrentPage")
            if isinstance(current, int) and current < number:  # the server went no further
                return items
            number += 1
            if number > max_pages:
                raise PermanentError(f"DoseSpot's list runs past {max_pages} pages.")

    # HTTP ------------------------------------------------------------------------------

    def _authorized(self, method, url, token, params, body) -> requests.Response:
        headers = {
            "Authorization": f"Bearer {token}",
            "Subscription-Key": self._subscription_key,
            "Accept": "application/json",
        }
        return self._http(method, url, params=params, json=body, headers=headers)

    def _http(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as error:
            raise Unreachable(f"DoseSpot did not answer ({type(error).__name__}).") from error
        except requests.RequestException as error:
            raise TransientError(f"DoseSpot call failed ({type(error).__name__}).") from error

    @staticmethod
    def _raise_for_transient(answer: requests.Response) -> None:
        if answer.status_code == 429:
            raise TransientError(
                "DoseSpot asked us to slow down (HTTP 429).",
                retry_after=retry_after_seconds(answer.headers.get("Retry-After")),
            )
        if answer.status_code >= 500 or answer.status_code == 408:
            raise TransientError(f"DoseSpot answered HTTP {answer.status_code}.")

    def _checked(self, answer: requests.Response) -> dict:
        self._raise_for_transient(answer)
        body = _json_or_none(answer)
        if not isinstance(body, dict):
            raise NotDoseSpot(f"DoseSpot answered HTTP {answer.status_code} without JSON.")
        result = body.get("Result")
        if not isinstance(result, dict):
            if answer.status_code >= 400:
                raise PermanentError(f"DoseSpot refused the call (HTTP {answer.status_code}).")
            raise NotDoseSpot("DoseSpot answered without a Result.")
        code = str(result.get("ResultCode") or "")
        if code.upper() != "OK":
            description = str(result.get("ResultDescription") or "")
            shown = safe_description(description) or "no description"
            raise DoseSpotRefused(
                f"DoseSpot refused the call ({code or 'no ResultCode'}): {shown}",
                description=description,
                result_code=code,
            )
        return body


def _json_or_none(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _present(params: dict) -> dict:
    return {key: value for key, value in params.items() if value not in (None, "")}

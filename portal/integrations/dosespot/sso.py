"""The single sign-on URL that opens DoseSpot's own prescribing screen (DOSESPOT.md section 2).

The codes are DoseSpot's recipe, not a choice of ours: salted SHA-512 (not HMAC), base64 with
the trailing "==" dropped. The phrase is fresh for every launch because DoseSpot refuses a
phrase it has seen (a copied URL cannot be replayed), so a URL is made at the moment of the
launch and never stored or logged. No patient data goes in it: only DoseSpot's ids.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from urllib.parse import urlencode

PHRASE_LENGTH = 32
VERIFY_PREFIX_LENGTH = 22  # DoseSpot salts the user check with the phrase's first 22 characters
ALPHANUMERIC = string.ascii_letters + string.digits
LOGIN_PAGE = "LoginSingleSignOn.aspx"


def new_phrase() -> str:
    """32 random letters and digits from the operating system's generator."""
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(PHRASE_LENGTH))


def _hash(text: str) -> str:
    """base64(SHA-512(UTF-8 text)) without its trailing "==" (a 64-byte digest always has it)."""
    digest = hashlib.sha512(text.encode("utf-8")).digest()
    return base64.b64encode(digest).decode().removesuffix("==")


def sso_codes(phrase: str, clinician_id: str | int, clinic_key: str) -> tuple[str, str]:
    """(SingleSignOnCode, SingleSignOnUserIdVerify) for one phrase."""
    code = phrase + _hash(phrase + clinic_key)
    verify = _hash(f"{clinician_id}{phrase[:VERIFY_PREFIX_LENGTH]}{clinic_key}")
    return code, verify


def login_page(sso_base_url: str) -> str:
    """The login page under the configured base (which may already name the page)."""
    base = sso_base_url.rstrip("/")
    return base if base.lower().endswith(LOGIN_PAGE.lower()) else f"{base}/{LOGIN_PAGE}"


def launch_url(
    sso_base_url: str,
    clinic_id: str | int,
    clinic_key: str,
    clinician_id: str | int,
    patient_id: str | int | None = None,
    *,
    phrase: str | None = None,
) -> str:
    """The URL opening the screen for this clinician: on DoseSpot's patient ``patient_id``, or
    on the clinician's notification queues (refills, errors) when there is no patient.

    ``phrase`` is for tests that recompute the codes; callers leave it out."""
    phrase = phrase or new_phrase()
    if len(phrase) < PHRASE_LENGTH:
        raise ValueError("the single sign-on phrase must be at least 32 characters")
    code, verify = sso_codes(phrase, clinician_id, clinic_key)
    params: dict[str, str] = {
        "SingleSignOnClinicId": str(clinic_id),
        "SingleSignOnUserId": str(clinician_id),
        "SingleSignOnPhraseLength": str(len(phrase)),
        "SingleSignOnCode": code,
        "SingleSignOnUserIdVerify": verify,
    }
    if patient_id is not None:
        params["PatientId"] = str(patient_id)
    else:
        params["RefillsErrors"] = "1"
    return f"{login_page(sso_base_url)}?{urlencode(params)}"

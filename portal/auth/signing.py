"""The two-factor re-check at the moment a prescription is signed (21 CFR 1311.115 for
controlled substances): what the prescriptions' signing step calls, before its own use case.
"""

from __future__ import annotations

from portal.auth.epcs import may_sign_controlled
from portal.auth.factors import confirm_factors
from portal.transaction import Refused


def confirm_signing_factors(
    user_id: int,
    password: str | None,
    totp_code: str | None,
    *,
    controlled: bool,
    source: str | None = None,
) -> None:
    """Confirm the prescriber is at the keyboard as they sign: a fresh TOTP code always
    (a used one is refused: a second click on "Sign" carrying the same code signs nothing),
    and the password too for a controlled substance, from an account that may sign
    controlled prescriptions (``may_sign_controlled``). Raises ``Refused`` beside the field
    (``totp_code``, ``password``) or above the form.

    Its own use case (the factors are spent and failures counted toward the account's
    back-off even when the signing is refused): call it just before the signing use case,
    never inside it. Audited as ``auth.factors_confirmed`` / ``auth.factors_refused`` (and
    ``auth.sign_in_failed`` for a wrong factor, which counts like one at sign-in).
    """
    if controlled and not may_sign_controlled(user_id):
        raise Refused(
            "You are not allowed to sign controlled-substance prescriptions: an administrator "
            "and a DEA registrant grant that (Users → your account → Controlled substances)."
        )
    confirm_factors(
        user_id,
        totp_code=totp_code,
        password=password,
        ask_password=controlled,
        purpose="signing a controlled prescription" if controlled else "signing a prescription",
        source=source,
    )

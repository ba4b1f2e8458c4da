"""The signing dialog's form: the draft's version, the prescriber's factors, and an override
(a listed reason and their words) for each alert that needs one.

Overrides are keyed by the alert's stable code (``reason:<code>``, ``comment:<code>``): the
alerts are known only when the checks run, so those fields are read from the posted data,
not declared.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, Optional

from portal.prescriptions.signing.services import OVERRIDE_REASONS, Override


class SignForm(FlaskForm):
    # Required: a signing always names the version the prescriber reviewed (what was decided
    # before the signing transaction, e.g. whether the password was asked, is for that one).
    version = IntegerField(
        "Version", validators=[DataRequired("Reload the prescription and sign again.")]
    )
    totp_code = StringField(
        "Code from your authenticator app",
        validators=[Optional()],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 8},
    )
    password = PasswordField(
        "Your password (controlled substance)",
        validators=[Optional()],
        render_kw={"autocomplete": "current-password"},
    )

    def overrides(self, formdata) -> dict[str, Override]:
        """Each ``reason:<code>`` posted with a listed reason, and its ``comment:<code>``."""
        found = {}
        for name in formdata:
            if not name.startswith("reason:"):
                continue
            code = name.removeprefix("reason:")[:200]
            reason = (formdata.get(name) or "").strip()
            if reason in OVERRIDE_REASONS:
                found[code] = Override(reason, (formdata.get(f"comment:{code}") or "")[:2000])
        return found

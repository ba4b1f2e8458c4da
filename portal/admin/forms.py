"""Forms of the user administration pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    AnyOf,
    DataRequired,
    Email,
    EqualTo,
    Length,
    Optional,
    Regexp,
    StopValidation,
)

from portal.auth.models import ROLE_LABELS, ROLE_NAMES
from portal.dates import DateField

ROLE_CHOICES = [SelectChoice(role, ROLE_LABELS[role]) for role in ROLE_NAMES]


class RolesField(SelectMultipleField):
    """Roles as a group of checkboxes (the template draws them; see admin/_role_boxes.html)."""

    def pre_validate(self, form):
        if not self.data:
            raise StopValidation("Choose at least one role.")
        super().pre_validate(form)


def _roles_field() -> RolesField:
    return RolesField("Roles", choices=ROLE_CHOICES, validate_choice=True)


def _full_name_field() -> StringField:
    return StringField("Full name", validators=[DataRequired(), Length(max=200)])


def _email_field() -> EmailField:
    return EmailField(
        "Email",
        validators=[
            Optional(),
            Length(max=254),
            Email(message="That doesn't look like an email address."),
        ],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
    )


class UserEditForm(FlaskForm):
    """Name, email and roles of an existing account."""

    full_name = _full_name_field()
    email = _email_field()
    roles = _roles_field()


class AccountEditForm(UserEditForm):
    """An existing account's page: also the last day the person works here."""

    employment_ends_on = DateField(
        "Last day of work",
        validators=[Optional()],
        description="Leave empty while they work here. From the day after, they can't sign "
        "in and their calendar feeds stop.",
    )
    npi = StringField(
        "NPI (National Provider Identifier)",
        validators=[Optional(), Length(max=14)],
        description="A prescriber's 10 digits, printed on paper prescriptions; the check "
        "digit is verified.",
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
    )


class NewPasswordMixin:
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=1024)],
        description="At least 12 characters; a few unrelated words work well. "
        "Common passwords and the person's own name are refused.",
    )
    confirm_password = PasswordField(
        "Password again",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
    )


class UserCreateForm(NewPasswordMixin, UserEditForm):
    """A new account with its initial password."""

    username = StringField(
        "Username",
        validators=[
            DataRequired(),
            Length(min=2, max=64),
            Regexp(
                r"^[A-Za-z0-9._-]+$",
                message="Use letters, digits, dots, dashes or underscores only.",
            ),
        ],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        description="Used to sign in; stored in lower case.",
    )


class ResetPasswordForm(NewPasswordMixin, FlaskForm):
    """A new password chosen by an administrator."""


class ConfirmForm(FlaskForm):
    """Only the CSRF token: the button press is the confirmation."""


# --- controlled substances (EPCS) ---------------------------------------------------------------


def _totp_field() -> StringField:
    return StringField(
        "Code from your authenticator app",
        validators=[DataRequired(message="Type the 6-digit code from your authenticator app.")],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 12},
        description="A fresh code: each one is used once.",
    )


def _kind_field() -> HiddenField:
    return HiddenField(validators=[AnyOf(("grant", "revoke"))])


class DeaNumberForm(FlaskForm):
    """A prescriber's DEA registration number (empty removes it)."""

    dea_number = StringField(
        "DEA number",
        validators=[Optional(), Length(max=20)],
        description="Two letters and seven digits, e.g. AB1234563. Changing or removing it "
        "ends their permission to sign controlled prescriptions.",
    )


class EpcsProposeForm(FlaskForm):
    """An administrator proposes a grant or a revoke, confirming with their own code."""

    kind = _kind_field()
    totp_code = _totp_field()


class EpcsWithdrawForm(EpcsProposeForm):
    """Withdraw or decline a waiting proposal, with a fresh code."""


class EpcsApproveForm(FlaskForm):
    """A DEA registrant approves with two factors (and, for a grant, the verification)."""

    kind = _kind_field()
    verified = BooleanField(
        "I verified that their DEA registration and State authorisation to prescribe "
        "controlled substances are current and in good standing."
    )
    password = PasswordField(
        "Your password",
        validators=[DataRequired(message="Type your password."), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    totp_code = _totp_field()

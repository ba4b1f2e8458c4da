"""Forms of the user administration pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
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

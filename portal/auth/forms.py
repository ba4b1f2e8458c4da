"""Sign-in and account forms.

Autocomplete hints let password managers and phones fill the right thing: the username, the
current or a new password, or the one-time code from an authenticator app.
"""

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

# A 6-digit TOTP code: the numeric keypad on phones and tablets, and iOS/Android code autofill.
TOTP_INPUT = {
    "autocomplete": "one-time-code",
    "inputmode": "numeric",
    "pattern": "[0-9 ]*",
    "maxlength": "7",
    "spellcheck": "false",
}


class SignInForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[DataRequired(), Length(max=64)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )


class SecondFactorForm(FlaskForm):
    code = StringField(
        "6-digit code", validators=[DataRequired(), Length(max=12)], render_kw=TOTP_INPUT
    )


class RecoveryCodeForm(FlaskForm):
    recovery_code = StringField(
        "Recovery code",
        validators=[DataRequired(), Length(max=32)],
        description="Ten letters and digits, for example 3f9a1-c07be. Each works once.",
        render_kw={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"},
    )


class EnrolmentForm(FlaskForm):
    code = StringField(
        "6-digit code from the app",
        validators=[DataRequired(), Length(max=12)],
        render_kw=TOTP_INPUT,
    )


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password",
        validators=[DataRequired()],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = PasswordField(
        "New password",
        validators=[DataRequired(), Length(max=1024)],
        description="At least 12 characters. A few unrelated words work well.",
        render_kw={"autocomplete": "new-password"},
    )
    confirm_password = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("new_password", message="The two passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )


class NewPasswordForm(FlaskForm):
    """The owner's own password, replacing one an administrator chose (first sign-in after a
    reset or after the account was made)."""

    new_password = PasswordField(
        "New password",
        validators=[DataRequired(), Length(max=1024)],
        description="At least 12 characters, and not the temporary one you were given.",
        render_kw={"autocomplete": "new-password"},
    )
    confirm_password = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("new_password", message="The two passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )


class AcknowledgeForm(FlaskForm):
    """Only the CSRF token: pressing the button acknowledges the notices shown."""

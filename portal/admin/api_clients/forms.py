"""Forms of the API clients' pages."""

from __future__ import annotations

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import (
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from portal.fhir.clients import RATE_LIMIT_MAX, responsible_people, scope_choices
from portal.fhir.models import AUTH_CLIENT_SECRET, AUTH_PRIVATE_KEY_JWT, NAME_MAX

AUTH_CHOICES = [
    SelectChoice(AUTH_CLIENT_SECRET, "Client secret (the portal makes one and shows it once)"),
    SelectChoice(
        AUTH_PRIVATE_KEY_JWT, "Private key JWT (SMART Backend Services: paste its public key)"
    ),
]


class ScopesField(SelectMultipleField):
    """Scopes as a group of checkboxes, each with its own label."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ClientSettingsForm(FlaskForm):
    """What an admin may change on a registered client (its name and way of signing in
    stay: the audit trail and its operator know it by them)."""

    responsible = SelectField(
        "Responsible person",
        coerce=int,
        validators=[InputRequired(message="Choose the person responsible for this client.")],
    )
    scopes = ScopesField("Scopes")
    public_key = TextAreaField(
        "Public key",
        validators=[Optional(), Length(max=20_000)],
        description="For a private-key client: its JWKS (JSON) or a PEM public key "
        "(RSA or EC; it signs with RS384 or ES384).",
        render_kw={"rows": 5, "spellcheck": "false"},
    )
    jwks_url = StringField(
        "JWKS URL",
        validators=[Optional(), Length(max=500)],
        description="Or, for a private-key client that publishes its keys: the https:// "
        "address of its JWKS. The portal fetches it when the client asks for a token and "
        "again when the client rotates to a new key.",
        render_kw={"spellcheck": "false", "inputmode": "url"},
    )
    rate_limit = IntegerField(
        "Requests a minute",
        validators=[Optional(), NumberRange(min=1, max=RATE_LIMIT_MAX)],
        description="Requests beyond this within a minute are answered 429.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.responsible.choices = [
            SelectChoice(0, "Choose…"),
            *(SelectChoice(user_id, name) for user_id, name in responsible_people()),
        ]
        self.scopes.choices = [SelectChoice(scope, scope) for scope in scope_choices()]
        if self.rate_limit.data is None and not self.is_submitted():  # a new client
            self.rate_limit.data = current_app.config["FHIR_RATE_LIMIT_PER_MINUTE"]


class RegisterClientForm(ClientSettingsForm):
    """A new client: its name and how it signs in, beside the settings."""

    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=NAME_MAX)],
        description="The system calling the API, as the audit trail will name it.",
    )
    auth_method = RadioField(
        "Signs in with",
        choices=AUTH_CHOICES,
        default=AUTH_CLIENT_SECRET,
        validators=[InputRequired()],
    )

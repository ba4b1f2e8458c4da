"""Forms of the integrations console, made from each connector's settings schema.

A connector declares its settings as ``Field``s; the console's form has one control per
field, under the attribute ``setting_<name>`` (so a field named like a form's own attribute,
"data" or "errors", cannot shadow it). Secrets are password inputs that never carry a
value back to the page.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, TextAreaField, URLField
from wtforms.validators import InputRequired, Length, Optional

from portal.admin.integrations.services import EXTERNAL_ID_MAX, Prescriber, clinician_field
from portal.integrations.base import Connector, Field
from portal.integrations.settings import Submitted
from portal.transaction import Refused

PREFIX = "setting_"
TEXT_MAX = 1000
LINES_MAX = 20000  # a multi-line setting (a lab's code list, a certificate)


def attribute_of(field_name: str) -> str:
    return PREFIX + field_name


def _control(field: Field, secret_is_set: bool):
    must_type = field.required and field.type != "boolean" and not (field.secret and secret_is_set)
    validators = [
        InputRequired(message=f"{field.label} is required.") if must_type else Optional(),
        Length(max=TEXT_MAX),
    ]
    description = field.help
    if field.type == "boolean":
        return BooleanField(field.label, description=description)
    if field.secret:
        return PasswordField(
            field.label,
            validators=validators,
            description=description,
            render_kw={"autocomplete": "new-password"},
        )
    if field.type == "lines":
        validators[-1] = Length(max=LINES_MAX)
        return TextAreaField(
            field.label, validators=validators, description=description, render_kw={"rows": 4}
        )
    if field.type == "url":
        return URLField(field.label, validators=validators, description=description)
    if field.type == "integer":
        return StringField(
            field.label,
            validators=validators,
            description=description,
            render_kw={"inputmode": "numeric"},
        )
    return StringField(field.label, validators=validators, description=description)


class SettingsForm(FlaskForm):
    """A connector's settings; subclassed per connector by ``settings_form``."""

    connector: type[Connector]

    def settings_fields(self):
        """(schema field, form control) in the schema's order."""
        return [(field, self[attribute_of(field.name)]) for field in self.connector.fields]

    def submitted(self) -> Submitted:
        values, secrets = {}, {}
        for field, control in self.settings_fields():
            if field.secret:
                secrets[field.name] = control.data or ""
            else:
                values[field.name] = control.data
        return Submitted(values=values, secrets=secrets)


def settings_form(
    cls: type[Connector], values: dict, secrets_set: dict[str, bool], *, from_request=True
) -> SettingsForm:
    """The form of ``cls``'s settings: what was sent, or (GET, or beside another action)
    the stored plain values. Secrets are never filled in."""
    attributes = {"connector": cls}
    for field in cls.fields:
        attributes[attribute_of(field.name)] = _control(field, secrets_set.get(field.name, False))
    form_class = type(f"{cls.__name__}SettingsForm", (SettingsForm,), attributes)
    data = {attribute_of(name): "" if value is None else value for name, value in values.items()}
    if from_request:
        return form_class(data=data)
    return form_class(formdata=None, data=data)


def refusal_on_form(error: Refused) -> Refused:
    """The settings service's refusal with its field named as the form names it."""
    if not error.field:
        return error
    moved = Refused(error.message, attribute_of(error.field))
    moved.status = error.status
    return moved


class ClinicianIdsForm(FlaskForm):
    """The vendor's clinician id of each prescriber; subclassed per list of prescribers."""

    prescribers: list[Prescriber]

    def typed(self) -> dict[int, str]:
        return {
            person.user_id: self[clinician_field(person.user_id)].data or ""
            for person in self.prescribers
        }


def clinician_ids_form(
    staff: list[Prescriber], ids: dict[int, str], *, from_request=True
) -> ClinicianIdsForm:
    attributes = {"prescribers": staff}
    for person in staff:
        attributes[clinician_field(person.user_id)] = StringField(
            person.full_name,
            validators=[Optional(), Length(max=EXTERNAL_ID_MAX)],
            filters=[lambda value: value.strip() if isinstance(value, str) else value],
        )
    form_class = type("ClinicianIdsForm", (ClinicianIdsForm,), attributes)
    data = {clinician_field(user_id): value for user_id, value in ids.items()}
    if from_request:
        return form_class(prefix="clinicians", data=data)
    return form_class(prefix="clinicians", formdata=None, data=data)

"""The audit report's filter form (read from the query string: ids and action names only) and
the patient lookup (posted: a name or an MRN never goes into an address)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, ValidationError

from portal.audit.report import DEFAULT_SORT, SORT_COLUMNS
from portal.audit.services import OUTCOMES
from portal.dates import DateField
from portal.ids import IdField


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class ReportFilterForm(FlaskForm):
    """GET form: no CSRF token (it changes nothing), values come from ``request.args``."""

    class Meta:
        csrf = False

    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])
    user = StringField("User (username)", validators=[Optional(), Length(max=64)], filters=[_strip])
    # Chosen through the lookup (name or MRN); the address carries only the chosen id.
    patient = IdField(
        "Patient",
        validators=[Optional()],
        invalid_value_message="Not a patient id: a whole number from 1 up.",
    )
    action = SelectField("Action", validators=[Optional()], validate_choice=False)
    outcome = SelectField(
        "Outcome",
        choices=[SelectChoice("", "Any outcome")] + [SelectChoice(o, o.title()) for o in OUTCOMES],
        validators=[Optional()],
    )
    sort = SelectField(
        "Sort by",
        choices=[SelectChoice(name) for name in SORT_COLUMNS],
        default=DEFAULT_SORT,
        validators=[Optional()],
    )
    dir = SelectField(
        "Order",
        choices=[SelectChoice("desc", "Newest / Z first"), SelectChoice("asc", "Oldest / A first")],
        default="desc",
        validators=[Optional()],
    )

    def set_actions(self, actions: list[str]) -> None:
        self.action.choices = [SelectChoice("", "Any action")] + [SelectChoice(a) for a in actions]

    def validate_end(self, field) -> None:
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError("The end date is before the start date.")

    @property
    def sort_key(self) -> str:
        return self.sort.data if self.sort.data in SORT_COLUMNS else DEFAULT_SORT

    @property
    def descending(self) -> bool:
        return self.dir.data != "asc"


class PatientLookupForm(FlaskForm):
    """The patient lookup beside the filters: a name, "family, given", a date of birth or an
    MRN, as the registry's search takes them. Posted, so what was typed stays out of the
    address bar and the browser's history."""

    patient_query = StringField(
        "Patient (name or MRN)", validators=[Optional(), Length(max=100)], filters=[_strip]
    )

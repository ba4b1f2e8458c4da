"""The "Find next available" search form."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional, ValidationError

from portal.dates import DateField
from portal.scheduling.availability.services import TIMES_OF_DAY
from portal.scheduling.forms import int_or_none


class FindSlotsForm(FlaskForm):
    """Read from the query string: it holds no patient data, and a search can be bookmarked."""

    class Meta:
        csrf = False  # a GET search changes nothing

    appointment_type_id = SelectField(
        "Appointment type", coerce=int_or_none, validators=[InputRequired()]
    )
    provider_ids = SelectMultipleField(
        "Providers",
        coerce=int,
        validators=[Optional()],
        description="Choose none for any provider who offers the type; Ctrl (Cmd) for several.",
    )
    first_day = DateField("From", validators=[InputRequired(message="Enter the first day.")])
    last_day = DateField("To", validators=[InputRequired(message="Enter the last day.")])
    time_of_day = SelectField(
        "Time of day",
        choices=[SelectChoice(value, label) for value, label in TIMES_OF_DAY.items()],
        default="any",
    )

    def validate_appointment_type_id(self, field):
        if field.data is None:
            raise ValidationError("Choose an appointment type.")

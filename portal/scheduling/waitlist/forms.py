"""The form that puts a patient on the waitlist."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from portal.dates import DateField
from portal.ids import IdField


class WaitlistForm(FlaskForm):
    """Add a patient to the waitlist."""

    patient_query = StringField(
        "Find the patient",
        validators=[Optional(), Length(max=100)],
        description="Family name, “family, given”, date of birth, MRN or phone; then choose.",
    )
    patient_id = IdField(
        "Patient",
        validators=[InputRequired("Find and choose the patient.")],
        invalid_value_message="Find and choose the patient.",
    )
    appointment_type_id = SelectField(
        "Appointment type", coerce=int, validators=[DataRequired("Choose a type.")]
    )
    provider_ids = SelectMultipleField(
        "Providers",
        coerce=int,
        validators=[Optional()],
        description="None chosen: any provider who offers the type.",
    )
    earliest_day = DateField("Earliest day", validators=[InputRequired("Enter the earliest day.")])
    latest_day = DateField("Latest day", validators=[InputRequired("Enter the latest day.")])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=500)])

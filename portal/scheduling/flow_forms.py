"""Forms of the visit's day: status changes and check-in, the waitlist, calendar feeds."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from portal.ids import IdField, optional_id


class StatusChangeForm(FlaskForm):
    """A status button's post: the target status and the version the page showed."""

    status = HiddenField("Status", validators=[DataRequired("Choose a status.")])
    version = IntegerField("Version", validators=[InputRequired("The form is incomplete.")])
    room_id = SelectField(
        "Room",
        coerce=optional_id,
        validate_choice=False,
        validators=[Optional()],
        invalid_value_message="Choose one from the list.",
    )
    demographics_confirmed = BooleanField(
        "Demographics (name, date of birth, address, phone) confirmed with the patient"
    )
    insurance_confirmed = BooleanField("Insurance confirmed (card seen, details current)")

    def room_choice(self) -> int | None:
        value = self.room_id.data
        return value if isinstance(value, int) and value > 0 else None


class UndoStatusForm(FlaskForm):
    """The undo button's post: only the version the page showed."""

    version = IntegerField("Version", validators=[InputRequired("The form is incomplete.")])


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


class CalendarFeedForm(FlaskForm):
    """Create a calendar feed for a provider."""

    provider_id = SelectField("Provider", coerce=int, validators=[DataRequired("Choose one.")])

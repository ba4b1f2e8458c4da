"""Forms of the calendar: booking (one visit or a series), rescheduling, cancelling."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional
from wtforms.widgets import HiddenInput

DATE_MESSAGE = "Not a valid date: use the date picker or type e.g. 2030-03-04."
TIME_MESSAGE = "Not a valid time: type e.g. 09:40."


def _int_or_none(value):
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class BookingForm(FlaskForm):
    """The inline booking panel; also accepts ``starts_at`` (ISO, UTC) from find-a-slot."""

    patient_id = IntegerField("Patient", validators=[Optional()])
    provider_id = SelectField("Provider", coerce=_int_or_none, validate_choice=False)
    location_id = SelectField("Location", coerce=_int_or_none, validate_choice=False)
    appointment_type_id = SelectField("Type", coerce=_int_or_none, validate_choice=False)
    day = DateField("Date", validators=[Optional()], format="%Y-%m-%d")
    start_time = TimeField("Start", validators=[Optional()], format="%H:%M")
    minutes = IntegerField(
        "Minutes",
        validators=[Optional(), NumberRange(5, 720, "Between 5 minutes and 12 hours.")],
        description="Empty: the type's usual length.",
    )
    room_id = SelectField("Room", coerce=_int_or_none, validate_choice=False)
    reason = StringField("Reason for visit", validators=[Optional(), Length(max=500)])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=2000)])
    overbook = BooleanField("Overbook (book over another appointment on purpose)")
    starts_at = HiddenField()
    request_key = HiddenField()
    # Set by the waitlist's "Book this slot": the entry is marked booked with the visit.
    waitlist_entry_id = IntegerField(widget=HiddenInput(), validators=[Optional()])
    repeat = BooleanField("Repeat this visit")
    interval_weeks = IntegerField("Every how many weeks", validators=[Optional()], default=1)
    occurrences = IntegerField("Number of visits", validators=[Optional()])
    until = DateField("Or until (inclusive)", validators=[Optional()], format="%Y-%m-%d")


class RescheduleForm(FlaskForm):
    version = HiddenField(validators=[InputRequired()])
    provider_id = SelectField("Provider", coerce=_int_or_none, validate_choice=False)
    day = DateField("New date", validators=[InputRequired(DATE_MESSAGE)], format="%Y-%m-%d")
    start_time = TimeField("New start", validators=[InputRequired(TIME_MESSAGE)], format="%H:%M")
    minutes = IntegerField(
        "Minutes",
        validators=[Optional(), NumberRange(5, 720, "Between 5 minutes and 12 hours.")],
    )
    room_id = SelectField("Room", coerce=_int_or_none, validate_choice=False)


class CancelForm(FlaskForm):
    version = HiddenField(validators=[InputRequired()])
    reason = StringField(
        "Reason for cancelling",
        validators=[InputRequired("Give a reason for cancelling."), Length(max=500)],
    )
    rest_of_series = BooleanField("Also cancel the later visits of this series")

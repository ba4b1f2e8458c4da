"""Forms of booking: one visit or a series, rescheduling, cancelling."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional
from wtforms.widgets import HiddenInput

from portal.dates import DateField
from portal.ids import IdField, optional_id

DATE_MESSAGE = "Not a valid date: use the date picker or type e.g. 2030-03-04."
TIME_MESSAGE = "Not a valid time: type e.g. 09:40."
CHOOSE_FROM_LIST = "Choose one from the list."


def _id_choice(label: str) -> SelectField:
    """A select of rows filled by the view; the services check the chosen id (a value that
    cannot be an id is refused here, before any query)."""
    return SelectField(
        label, coerce=optional_id, validate_choice=False, invalid_value_message=CHOOSE_FROM_LIST
    )


# A booking day beyond the bounds of every date (portal/dates.py) gets the words the booking
# service uses for a day out of its own, narrower, range.
BOOKING_DAY_BOUNDS = {
    "too_early_message": "That date is in the past.",
    "too_late_message": "Appointments can be booked up to two years ahead.",
}


class BookingForm(FlaskForm):
    """The inline booking panel; also accepts ``starts_at`` (ISO, UTC) from find-a-slot."""

    patient_id = IdField(
        "Patient", validators=[Optional()], invalid_value_message="Find and choose the patient."
    )
    provider_id = _id_choice("Provider")
    location_id = _id_choice("Location")
    appointment_type_id = _id_choice("Type")
    day = DateField("Date", validators=[Optional()], format="%Y-%m-%d", **BOOKING_DAY_BOUNDS)
    start_time = TimeField("Start", validators=[Optional()], format="%H:%M")
    minutes = IntegerField(
        "Minutes",
        validators=[Optional(), NumberRange(5, 720, "Between 5 minutes and 12 hours.")],
        description="Empty: the type's usual length.",
    )
    room_id = _id_choice("Room")
    reason = StringField("Reason for visit", validators=[Optional(), Length(max=500)])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=2000)])
    overbook = BooleanField("Overbook (book over another appointment on purpose)")
    outside_hours = BooleanField("Book outside the provider's working hours")
    starts_at = HiddenField()
    request_key = HiddenField()
    # Set by the waitlist's "Book this slot": the entry is marked booked with the visit.
    waitlist_entry_id = IdField(
        widget=HiddenInput(),
        validators=[Optional()],
        invalid_value_message="The form is incomplete: reload the page.",
    )
    repeat = BooleanField("Repeat this visit")
    interval_weeks = IntegerField("Every how many weeks", validators=[Optional()], default=1)
    occurrences = IntegerField("Number of visits", validators=[Optional()])
    until = DateField("Or until (inclusive)", validators=[Optional()], format="%Y-%m-%d")


class RescheduleForm(FlaskForm):
    version = HiddenField(validators=[InputRequired()])
    provider_id = _id_choice("Provider")
    day = DateField(
        "New date",
        validators=[InputRequired(DATE_MESSAGE)],
        format="%Y-%m-%d",
        **BOOKING_DAY_BOUNDS,
    )
    start_time = TimeField("New start", validators=[InputRequired(TIME_MESSAGE)], format="%H:%M")
    minutes = IntegerField(
        "Minutes",
        validators=[Optional(), NumberRange(5, 720, "Between 5 minutes and 12 hours.")],
    )
    room_id = _id_choice("Room")


class CancelForm(FlaskForm):
    version = HiddenField(validators=[InputRequired()])
    reason = StringField(
        "Reason for cancelling",
        validators=[InputRequired("Give a reason for cancelling."), Length(max=500)],
    )
    rest_of_series = BooleanField("Also cancel the later visits of this series")

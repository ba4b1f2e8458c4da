"""Forms of the scheduling set-up pages.

Choices are filled by the views (they come from the database). Checks that need the
database (overlaps, name clashes) live in portal.scheduling.setup.services, beside the use
cases.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from portal.dates import DateField, DateTimeLocalField
from portal.scheduling.forms import int_or_none
from portal.scheduling.models import EXCEPTION_KINDS, MODALITIES, VISIT_KINDS


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _options(labels: dict) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in labels.items()]


class AppointmentTypeForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)], filters=[_strip])
    default_minutes = IntegerField(
        "Default length (minutes)",
        validators=[InputRequired(message="Enter the length in minutes.")],
        description="Between 5 minutes and 12 hours.",
    )
    colour = StringField(
        "Colour on the calendar",
        default="#1f5f8b",
        validators=[DataRequired()],
        render_kw={"type": "color"},
    )
    visit_kind = SelectField("Kind of visit", choices=_options(VISIT_KINDS))
    modality = SelectField("Where", choices=_options(MODALITIES))
    provider_ids = SelectMultipleField(
        "Providers who offer it",
        coerce=int,
        validators=[Optional()],
        description="Hold Ctrl (Cmd on a Mac) to choose several.",
    )
    is_active = BooleanField("Bookable (uncheck to retire the type)", default=True)


class RoomForm(FlaskForm):
    location_id = SelectField("Location", coerce=int_or_none)
    name = StringField("Room name", validators=[DataRequired(), Length(max=100)], filters=[_strip])
    is_active = BooleanField("In use", default=True)


class BlockForm(FlaskForm):
    provider_id = SelectField("Provider", coerce=int_or_none)
    weekday = SelectField("Day of the week", coerce=int_or_none)
    start_time = TimeField("Starts", validators=[InputRequired(message="Enter the start time.")])
    end_time = TimeField("Ends", validators=[InputRequired(message="Enter the end time.")])
    location_id = SelectField("Location", coerce=int_or_none)
    allowed_type_ids = SelectMultipleField(
        "Only these types",
        coerce=int,
        validators=[Optional()],
        description="Choose none to allow every type the provider offers; Ctrl (Cmd) for several.",
    )
    valid_from = DateField("First day it applies", validators=[Optional()])
    valid_until = DateField("Last day it applies", validators=[Optional()])


class ExceptionForm(FlaskForm):
    provider_id = SelectField("Provider", coerce=int_or_none)
    kind = SelectField("Kind", choices=_options(EXCEPTION_KINDS))
    starts_at = DateTimeLocalField(
        "Starts",
        format="%Y-%m-%dT%H:%M",
        validators=[InputRequired(message="Enter when it starts.")],
    )
    ends_at = DateTimeLocalField(
        "Ends",
        format="%Y-%m-%dT%H:%M",
        validators=[InputRequired(message="Enter when it ends.")],
    )
    location_id = SelectField(
        "Location (extra sessions)", coerce=int_or_none, validators=[Optional()]
    )
    reason = StringField("Reason", validators=[Optional(), Length(max=200)], filters=[_strip])


class ClosureForm(FlaskForm):
    location_id = SelectField("Where", coerce=int_or_none, validators=[Optional()])
    first_day = DateField("First day", validators=[InputRequired(message="Enter the first day.")])
    last_day = DateField("Last day", validators=[Optional()])
    reason = StringField("Reason", validators=[Optional(), Length(max=200)], filters=[_strip])


class FeedSettingForm(FlaskForm):
    calendar_feed_shows_names = BooleanField(
        "Providers may show patients' names in their own calendar feeds"
    )


class DeleteForm(FlaskForm):
    """Only the CSRF token: a delete button's form."""

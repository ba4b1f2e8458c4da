"""The ad hoc encounter's form; its date and time are the clinic's wall clock."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, TimeField
from wtforms.validators import InputRequired, Length, Optional

from portal.charting.models import ENCOUNTER_KINDS
from portal.dates import DateField
from portal.ids import optional_id

CHOOSE_FROM_LIST = "Choose one from the list."


class EncounterForm(FlaskForm):
    """An ad hoc encounter; date and time are the clinic's wall clock."""

    kind = SelectField("Type", choices=list(ENCOUNTER_KINDS.items()), default="office")
    # The services check the ids name an enabled prescriber and an open location.
    provider_id = SelectField(
        "Provider",
        coerce=optional_id,
        validate_choice=False,
        invalid_value_message=CHOOSE_FROM_LIST,
    )
    location_id = SelectField(
        "Location",
        coerce=optional_id,
        validate_choice=False,
        invalid_value_message=CHOOSE_FROM_LIST,
    )
    chief_complaint = StringField(
        "Chief complaint",
        validators=[Optional(), Length(max=500, message="At most 500 characters.")],
    )
    occurred_on = DateField(
        "Date",
        validators=[InputRequired("Give the date.")],
        format="%Y-%m-%d",
    )
    occurred_time = TimeField("Time", validators=[InputRequired("Give the time.")], format="%H:%M")
    # Made when the form is shown: the same form sent twice opens the encounter made first.
    request_key = HiddenField()

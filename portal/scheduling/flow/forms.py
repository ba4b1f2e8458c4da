"""Forms of the visit's day: a status change (check-in and rooming included), its undo."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, IntegerField, SelectField
from wtforms.validators import DataRequired, InputRequired, Optional

from portal.ids import optional_id


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

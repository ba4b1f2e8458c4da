"""Forms of the vital-signs pages.

The measurement fields are text fields parsed by ``services.parse_measurement`` (one place
says what a number is); whether a value is possible is the service's decision, in canonical
units.
"""

from __future__ import annotations

from datetime import datetime

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, ValidationError
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from portal.charting.entered_in_error.forms import entered_in_error_form
from portal.charting.models import BP_POSITIONS
from portal.charting.vitals.services import MEASURES_BY_NAME, InvalidNumber, parse_measurement
from portal.clinic.clock import local_to_utc
from portal.dates import DateTimeLocalField


class MeasurementField(StringField):
    """A number typed in the clinic's unit; ``number`` holds it once the form validated."""

    def __init__(self, measure_name: str, **kwargs):
        measure = MEASURES_BY_NAME[measure_name]
        kwargs.setdefault(
            "render_kw", {"inputmode": "numeric" if measure.whole else "decimal", "maxlength": 12}
        )
        super().__init__(measure.label, **kwargs)
        self.whole = measure.whole
        self.number = None

    def pre_validate(self, form):
        if self.data and len(self.data) > 12:
            raise ValidationError("Enter a number." if self.whole else "Enter a number, e.g. 98.6.")
        try:
            self.number = parse_measurement(self.data, whole=self.whole)
        except InvalidNumber as error:
            raise ValidationError(str(error)) from error


class VitalsForm(FlaskForm):
    """One set of vital signs. Always used with ``prefix="vitals"`` (it shares pages)."""

    class Meta:
        # CSRFProtect checks every POST already; a prefixed form would want its own token field.
        csrf = False

    systolic = MeasurementField("systolic")
    diastolic = MeasurementField("diastolic")
    bp_position = SelectField(
        "Position",
        choices=[SelectChoice("", "—"), *(SelectChoice(k, v) for k, v in BP_POSITIONS.items())],
        validate_choice=False,
    )
    heart_rate = MeasurementField("heart_rate")
    respiratory_rate = MeasurementField("respiratory_rate")
    temperature = MeasurementField("temperature")
    spo2 = MeasurementField("spo2")
    weight = MeasurementField("weight")
    height = MeasurementField("height")
    pain_score = MeasurementField("pain_score")
    head_circumference = MeasurementField("head_circumference")
    taken_at = DateTimeLocalField(
        "Taken at",
        format="%Y-%m-%dT%H:%M",
        validators=[Optional()],
        description="Leave blank for now.",
    )
    confirmed = BooleanField("These values are correct")

    def entered(self) -> dict[str, float | None]:
        """Field name -> the number typed (None when blank), in the clinic's units."""
        return {name: getattr(self, name).number for name in MEASURES_BY_NAME}

    def taken_at_utc(self) -> datetime | None:
        """The typed time (clinic-local wall clock) in UTC; None when left blank."""
        if not self.taken_at.data:
            return None
        return local_to_utc(self.taken_at.data.date(), self.taken_at.data.time())


# The confirmation asked before a set of vitals is marked entered in error.
EnteredInErrorForm = entered_in_error_form("set")

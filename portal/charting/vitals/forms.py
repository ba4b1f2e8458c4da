"""Forms of the vital-signs and immunization pages.

The measurement fields are text fields parsed by ``vitals.parse_measurement`` (one place says
what a number is); whether a value is possible is the service's decision, in canonical units.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    IntegerField,
    SelectField,
    StringField,
    ValidationError,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from portal.charting.entered_in_error import ERROR_REASON_MAX_CHARS
from portal.charting.immunizations import CVX_VACCINES, ROUTES, SITES
from portal.charting.models import BP_POSITIONS, IMMUNIZATION_SOURCES
from portal.charting.vitals import (
    MEASURES_BY_NAME,
    InvalidNumber,
    parse_measurement,
)
from portal.clinic.services import clinic_time_zone


def _strip(value):
    return value.strip() if isinstance(value, str) else value


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
        local = self.taken_at.data.replace(tzinfo=ZoneInfo(clinic_time_zone()))
        return local.astimezone(UTC)


def _error_reason_field(thing: str) -> StringField:
    return StringField(
        f"Why was this {thing} entered in error?",
        validators=[
            DataRequired(message=f"Say why this {thing} was entered in error."),
            Length(
                max=ERROR_REASON_MAX_CHARS,
                message=f"Keep the reason to {ERROR_REASON_MAX_CHARS} characters or fewer.",
            ),
        ],
        filters=[_strip],
        description="For example: wrong patient, typing mistake, recorded twice.",
    )


def _error_confirm_field(thing: str) -> BooleanField:
    return BooleanField(
        f"I confirm this {thing} was entered in error",
        validators=[DataRequired(message="Tick the box to confirm.")],
    )


class EnteredInErrorForm(FlaskForm):
    """The confirmation asked before a set of vitals is marked entered in error."""

    reason = _error_reason_field("set")
    confirm = _error_confirm_field("set")


class ImmunizationEnteredInErrorForm(FlaskForm):
    """The same question before an immunization (or a refusal) is marked entered in error."""

    reason = _error_reason_field("immunization")
    confirm = _error_confirm_field("immunization")


class ImmunizationForm(FlaskForm):
    cvx_code = SelectField(
        "Vaccine",
        choices=[
            SelectChoice("", "Choose a vaccine"),
            *(SelectChoice(code, f"{name} (CVX {code})") for code, name in CVX_VACCINES.items()),
        ],
        validators=[InputRequired(message="Choose a vaccine from the list.")],
        validate_choice=False,
    )
    occurred_on = DateField(
        "Date", validators=[InputRequired(message="Enter the date it was given or refused.")]
    )
    source = SelectField(
        "Given here or elsewhere",
        choices=[SelectChoice(k, v) for k, v in IMMUNIZATION_SOURCES.items()],
    )
    dose_number = IntegerField(
        "Dose number",
        validators=[Optional(), NumberRange(1, 20, message="Enter a dose number from 1 to 20.")],
    )
    lot_number = StringField(
        "Lot number", validators=[Optional(), Length(max=50)], filters=[_strip]
    )
    manufacturer = StringField(
        "Manufacturer", validators=[Optional(), Length(max=100)], filters=[_strip]
    )
    site = SelectField(
        "Site",
        choices=[SelectChoice("", "—"), *(SelectChoice(s, s) for s in SITES)],
        validate_choice=False,
    )
    route = SelectField(
        "Route",
        choices=[SelectChoice("", "—"), *(SelectChoice(k, v) for k, v in ROUTES.items())],
        validate_choice=False,
    )
    refused = BooleanField("Refused by the patient or parent")
    refusal_reason = StringField(
        "Reason for refusal", validators=[Optional(), Length(max=500)], filters=[_strip]
    )

    def details(self) -> dict:
        return {
            "cvx_code": self.cvx_code.data or "",
            "occurred_on": self.occurred_on.data,
            "source": self.source.data,
            "dose_number": self.dose_number.data,
            "lot_number": self.lot_number.data or None,
            "manufacturer": self.manufacturer.data or None,
            "site": self.site.data or None,
            "route": self.route.data or None,
            "refused": bool(self.refused.data),
            "refusal_reason": self.refusal_reason.data or None,
        }

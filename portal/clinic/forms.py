"""Forms of the clinic settings page."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

import phonenumbers
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional


def _strip(value):
    return value.strip() if isinstance(value, str) else value


@cache
def time_zone_choices() -> list[SelectChoice]:
    """Every IANA zone this machine knows, by name (the 'posix/' and 'right/' copies left out)."""
    names = sorted(
        name
        for name in available_timezones()
        if not name.startswith(("posix/", "right/")) and name != "localtime"
    )
    return [SelectChoice(name, name.replace("_", " ")) for name in names]


def phone_for_input(value: str | None) -> str:
    """A stored E.164 number as people type it (+1 413-555-0100)."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


class ClinicForm(FlaskForm):
    name = StringField(
        "Clinic name", validators=[DataRequired(), Length(max=200)], filters=[_strip]
    )
    address = TextAreaField(
        "Address", validators=[Optional(), Length(max=500)], filters=[_strip], render_kw={"rows": 2}
    )
    phone = StringField(
        "Phone",
        validators=[Optional(), Length(max=40)],
        filters=[_strip],
        description="With the area code; numbers outside the US start with + and the country code.",
    )
    time_zone = SelectField(
        "Time zone",
        choices=time_zone_choices,
        validators=[DataRequired()],
        description="Times across the portal are shown in this zone.",
    )
    # Vital signs are typed and shown in these units (stored in UCUM canonical units).
    temperature_unit = SelectField(
        "Temperature",
        choices=[SelectChoice("[degF]", "Fahrenheit (°F)"), SelectChoice("Cel", "Celsius (°C)")],
    )
    weight_unit = SelectField(
        "Weight",
        choices=[SelectChoice("[lb_av]", "Pounds (lb)"), SelectChoice("kg", "Kilograms (kg)")],
    )
    length_unit = SelectField(
        "Height and lengths",
        choices=[SelectChoice("[in_i]", "Inches (in)"), SelectChoice("cm", "Centimetres (cm)")],
    )

    date_order = SelectField(
        "Dates are typed",
        choices=[
            SelectChoice("mdy", "Month first: 02/03/1980 is 3 February 1980"),
            SelectChoice("dmy", "Day first: 02/03/1980 is 2 March 1980"),
        ],
        description="How a date typed with numbers only is read, e.g. in patient search.",
    )

    prescribing_path = SelectField(
        "Prescribing screen",
        choices=[
            SelectChoice("portal", "The portal's own screens (safety checks from our data)"),
            SelectChoice("vendor", "The e-prescribing service's embedded screen"),
        ],
        description='Where "Prescribe" leads on the encounter and the chart. The other '
        "stays reachable from the patient's prescriptions page.",
    )


class LocationForm(FlaskForm):
    """Shown beside the clinic form with the prefix "location", so its ids don't clash."""

    class Meta:
        # CSRFProtect checks every POST already; a prefixed form would want its own token field.
        csrf = False

    name = StringField("Name", validators=[DataRequired(), Length(max=200)], filters=[_strip])
    address = TextAreaField(
        "Address", validators=[Optional(), Length(max=500)], filters=[_strip], render_kw={"rows": 2}
    )
    phone = StringField("Phone", validators=[Optional(), Length(max=40)], filters=[_strip])

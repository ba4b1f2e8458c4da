"""Forms of the immunization pages: a vaccine given, copied from another record, or refused;
and the confirmation before one is marked entered in error."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from portal.charting.entered_in_error.forms import entered_in_error_form
from portal.charting.immunizations.services import ROUTES, SITES
from portal.charting.models import IMMUNIZATION_SOURCES
from portal.dates import DateField
from portal.terminology.cvx import CVX_VACCINES


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class ImmunizationForm(FlaskForm):
    """A vaccine given here, copied from another record, or refused."""

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
        """The typed values, as the services take them."""
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


# The confirmation asked before an immunization (or a refusal) is marked entered in error.
ImmunizationEnteredInErrorForm = entered_in_error_form("immunization")

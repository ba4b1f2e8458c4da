"""Forms of composing a prescription: its directions (``SigForm``) and the rest of it
(``PrescriptionDetailsForm``: quantity, days supply, refills, substitution, the note to the
pharmacist, the effective date, the diagnoses).

The rules are those of ``portal.prescriptions.sig``, which the signing step runs again: the
forms only read the typed values, hand them to it and put its refusals beside the fields they
name. Choice lists are its lists, so a form can offer nothing the rules do not know; the
select fields do not refuse an unknown value themselves (``validate_choice=False``) so that
the refusal is the rule's, in its words ("Teaspoons are not used: dose in mL").

Both forms share the composing page with other forms, so they are used with a prefix and
carry no CSRF token of their own: CSRFProtect checks every POST already.
"""

from __future__ import annotations

from datetime import date

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional

from portal.dates import DateField
from portal.prescriptions import sig as rules
from portal.prescriptions.sig import DirectionsWarning, Sig
from portal.transaction import Refused
from portal.web import attach_error

MAX_DIAGNOSES = 2


def _choices(options: dict[str, str], blank: str | None = None) -> list[SelectChoice]:
    listed = {"": blank, **options} if blank is not None else options
    return [SelectChoice(value, label) for value, label in listed.items()]


UNIT_CHOICES = {code: unit.plural for code, unit in rules.DOSE_UNITS.items()}
ROUTE_CHOICES = {code: route.label for code, route in rules.ROUTES.items()}
FREQUENCY_CHOICES = {code: frequency.phrase for code, frequency in rules.FREQUENCIES.items()}


class SigForm(FlaskForm):
    """The directions: built from choices, or written out (``write_out``).

    ``dose_form`` and ``product_route`` are the product's (the catalog's or the vendor's
    words): an oral liquid must be dosed in mL.
    Once ``validate()`` is true: ``sig`` (the structured SIG, None when written out),
    ``directions_text`` (what will be sent) and ``warnings`` (error-prone spellings found
    in it, to show and to confirm; never a refusal).
    """

    class Meta:
        csrf = False

    # A checkbox rather than a choice of two: the builder is the rule, writing out the
    # exception (and a checkbox is what the house's field macro renders with its label).
    write_out = BooleanField("Write the directions out instead")
    dose_amount = StringField("Dose", render_kw={"inputmode": "decimal", "maxlength": 12})
    dose_unit = SelectField(
        "Unit", choices=_choices(UNIT_CHOICES, "Choose…"), validate_choice=False
    )
    route = SelectField("Route", choices=_choices(ROUTE_CHOICES, "Choose…"), validate_choice=False)
    frequency = SelectField(
        "How often", choices=_choices(FREQUENCY_CHOICES, "Choose…"), validate_choice=False
    )
    duration_amount = IntegerField(
        "For how long",
        validators=[Optional()],
        render_kw={"min": 1, "max": rules.MAX_DURATION_DAYS},
        description="Leave blank for an ongoing medication.",
    )
    duration_unit = SelectField(
        "Days or weeks",
        choices=_choices({"days": "days", "weeks": "weeks"}),
        default="days",
        validate_choice=False,
    )
    as_needed = BooleanField("As needed")
    as_needed_reason = StringField(
        "As needed for",
        render_kw={"maxlength": rules.MAX_AS_NEEDED_REASON},
        description="e.g. pain, wheezing, sleep",
    )
    extra_instructions = StringField(
        "Extra instructions",
        render_kw={"maxlength": rules.MAX_EXTRA_INSTRUCTIONS},
        description="e.g. with food",
    )
    directions = TextAreaField(
        "Directions (written out)",
        render_kw={"maxlength": rules.MAX_DIRECTIONS, "rows": 3},
        description="Spell out units and frequencies: units, daily, every other day.",
    )

    def __init__(
        self, *args, dose_form: str | None = None, product_route: str | None = None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.dose_form = dose_form
        self.product_route = product_route
        self.sig: Sig | None = None
        self.directions_text: str | None = None
        self.warnings: list[DirectionsWarning] = []

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        try:
            if self.write_out.data:
                self.directions_text = rules.check_directions(
                    self.directions.data, self.dose_form, self.product_route
                )
            else:
                self.sig = rules.build_sig(
                    dose_amount=self.dose_amount.data,
                    dose_unit=self.dose_unit.data,
                    route=self.route.data,
                    frequency=self.frequency.data,
                    duration_amount=self.duration_amount.data,
                    duration_unit=self.duration_unit.data,
                    as_needed=self.as_needed.data,
                    as_needed_reason=self.as_needed_reason.data,
                    extra_instructions=self.extra_instructions.data,
                    dose_form=self.dose_form,
                    product_route=self.product_route,
                )
                self.directions_text = self.sig.text
        except Refused as refusal:
            attach_error(self, refusal)
            return False
        self.warnings = rules.directions_warnings(self.directions_text)
        return True


class PrescriptionDetailsForm(FlaskForm):
    """Quantity, days supply, refills, substitution, note, effective date and diagnoses.

    Given where it is made: ``today`` (the clinic's), the product's DEA ``schedule`` (None
    when not controlled: it sets the refills and effective-date limits), the validated
    ``sig`` when there is one (for the days supply), and ``diagnosis_choices`` (code, label)
    from the patient's problem list. Once ``validate()`` is true, ``values()`` holds what
    was decided, the days supply worked out when it was left blank and can be.
    """

    class Meta:
        csrf = False

    quantity = StringField("Quantity", render_kw={"inputmode": "decimal", "maxlength": 12})
    dispense_unit = SelectField(
        "Dispense unit",
        choices=_choices(rules.DISPENSE_UNITS, "Choose…"),
        validate_choice=False,
    )
    days_supply = IntegerField(
        "Days supply",
        validators=[Optional()],
        render_kw={"min": 1, "max": rules.MAX_DAYS_SUPPLY},
        description="Leave blank to work it out from the directions and the quantity.",
    )
    refills = IntegerField(
        "Refills",
        validators=[InputRequired("Enter the number of refills (0 for none).")],
        default=0,
    )
    dispense_as_written = BooleanField("Dispense as written (no substitution)")
    pharmacist_note = TextAreaField(
        "Note to the pharmacist",
        render_kw={"maxlength": rules.MAX_PHARMACIST_NOTE, "rows": 2},
        description=f"At most {rules.MAX_PHARMACIST_NOTE} characters.",
    )
    effective_date = DateField(
        "Effective date", validators=[Optional()], description="Leave blank for today."
    )
    diagnoses = SelectMultipleField(f"Diagnoses (up to {MAX_DIAGNOSES})", choices=[])

    def __init__(
        self,
        *args,
        today: date,
        schedule: int | None = None,
        sig: Sig | None = None,
        diagnosis_choices: list[tuple[str, str]] | tuple = (),
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.today = today
        self.schedule = schedule
        self.sig = sig
        self.diagnoses.choices = [SelectChoice(code, label) for code, label in diagnosis_choices]
        # The browser's own limits, from the same rules (the server's check decides).
        self.refills.render_kw = {"min": 0, "max": rules.max_refills(schedule)}
        self.effective_date.render_kw = {
            "min": today.isoformat(),
            "max": rules.latest_effective_date(today, schedule).isoformat(),
        }
        self._values: dict | None = None

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        values = {}
        # Every rule runs, so that each field shows its own message at once.
        checks = {
            "quantity": lambda: rules.parse_quantity(self.quantity.data),
            "dispense_unit": self._dispense_unit,
            "refills": lambda: rules.check_refills(self.refills.data, self.schedule),
            "pharmacist_note": lambda: rules.check_pharmacist_note(self.pharmacist_note.data),
            "effective_date": lambda: rules.check_effective_date(
                self.effective_date.data, self.today, self.schedule
            ),
            "diagnoses": self._diagnoses,
        }
        for name, check in checks.items():
            if getattr(self, name).errors:
                continue
            try:
                values[name] = check()
            except Refused as refusal:
                attach_error(self, refusal)
                valid = False
        if not self.days_supply.errors and self.days_supply.data is not None:
            try:
                values["days_supply"] = rules.check_days_supply(self.days_supply.data)
            except Refused as refusal:
                attach_error(self, refusal)
                valid = False
        if not valid:
            return False
        if "days_supply" not in values:
            values["days_supply"] = rules.days_supply(
                self.sig, values["quantity"], values["dispense_unit"]
            )
        values["dispense_as_written"] = bool(self.dispense_as_written.data)
        self._values = values
        return True

    def _dispense_unit(self) -> str:
        if self.dispense_unit.data not in rules.DISPENSE_UNITS:
            raise Refused("Choose the unit the quantity is in.", "dispense_unit")
        return self.dispense_unit.data

    def _diagnoses(self) -> list[str]:
        chosen = list(dict.fromkeys(self.diagnoses.data or []))
        if len(chosen) > MAX_DIAGNOSES:
            raise Refused(f"Choose at most {MAX_DIAGNOSES} diagnoses.", "diagnoses")
        return chosen

    def values(self) -> dict:
        """What the prescriber decided, checked: quantity (Decimal), dispense_unit,
        days_supply (int, or None when it cannot be worked out), refills, dispense_as_written,
        pharmacist_note, effective_date (today when blank), diagnoses (codes)."""
        if self._values is None:
            raise RuntimeError("values() before a successful validate()")
        return dict(self._values)


class DrugSearchForm(FlaskForm):
    """The drug search box of the compose page (posted as you type)."""

    class Meta:
        csrf = False  # CSRFProtect checks the POST; the box has no token of its own

    drug_query = StringField(
        "Find a drug",
        render_kw={"maxlength": 100, "autocomplete": "off", "spellcheck": "false"},
        description="Type the name and strength, e.g. lisinopril 10; Tab or ↓ to the results.",
    )


class PharmacySearchForm(FlaskForm):
    """Pharmacy search at the e-prescribing vendor, by name and/or ZIP code."""

    class Meta:
        csrf = False

    pharmacy_name = StringField("Pharmacy name", render_kw={"maxlength": 60})
    pharmacy_zip = StringField("ZIP code", render_kw={"maxlength": 10, "inputmode": "numeric"})


class FavoriteForm(FlaskForm):
    """Save the draft's drug and directions as one of the prescriber's favourites."""

    class Meta:
        csrf = False

    label = StringField(
        "Name of the favourite",
        render_kw={"maxlength": 120},
        description="e.g. Lisinopril 10 mg daily",
    )


class EpcsCredentialForm(FlaskForm):
    """The prescriber's own EPCS credential at the e-prescribing vendor, confirmed with a
    fresh code from their authenticator (the PIN and token secret are never shown back)."""

    pin = PasswordField(
        "EPCS PIN at the e-prescribing service",
        validators=[InputRequired("Type your EPCS PIN.")],
        render_kw={"autocomplete": "off"},
    )
    otp_secret = PasswordField(
        "Secret key of your EPCS token (base32, as the service showed it)",
        validators=[InputRequired("Type the token's secret key.")],
        render_kw={"autocomplete": "off"},
    )
    totp_code = StringField(
        "Code from your authenticator app",
        validators=[InputRequired("Type the 6-digit code from your authenticator app.")],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 8},
    )

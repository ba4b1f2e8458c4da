"""Forms of the patient registry: demographics, record status, search."""

from __future__ import annotations

from datetime import date

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Optional,
    StopValidation,
    ValidationError,
)

from portal.dates import DateField
from portal.patients.identifiers import normalise_phone
from portal.patients.models import PATIENT_STATUSES, SEX_AT_BIRTH

EARLIEST_BIRTH_DATE = date(1900, 1, 1)
DATE_MESSAGE = "Not a valid date: use the date picker or type e.g. 1980-02-03."

# Every text field of the demographics form and the model column it fills.
TEXT_FIELDS = (
    "given_name",
    "family_name",
    "preferred_name",
    "gender_identity",
    "pronouns",
    "email",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "country",
    "preferred_language",
    "emergency_contact_name",
    "emergency_contact_relationship",
    "insurance_payer",
    "insurance_member_id",
    "insurance_group",
)
PHONE_FIELDS = ("phone_mobile", "phone_home", "phone_work", "emergency_contact_phone")
# What the service receives: every model column the form edits.
DEMOGRAPHIC_FIELDS = (*TEXT_FIELDS, *PHONE_FIELDS, "birth_date", "sex_at_birth")


def _choices(labels: dict[str, str]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in labels.items()]


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class MaxLength:
    """At most ``limit`` characters, said plainly.

    Absurdly long input (beyond MAX_FIELD_LENGTH, e.g. a pasted megabyte) is not echoed back
    into the re-rendered form: the user sees the message, the rest of their input stays.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.field_flags = {"maxlength": limit}

    def __call__(self, form, field):
        value = field.data or ""
        if len(value) <= self.limit:
            return
        message = f"At most {self.limit} characters (this has {len(value):,})."
        if len(value) > current_app.config["MAX_FIELD_LENGTH"]:
            field.data = ""
            field.raw_data = [""]
            message += " It was too long to keep; please type it again."
        raise ValidationError(message)


class Phone:
    """A phone number that ``phonenumbers`` accepts in the clinic's default region."""

    def __call__(self, form, field):
        if not field.data:
            return
        region = current_app.config["DEFAULT_PHONE_REGION"]
        if normalise_phone(field.data, region) is None:
            raise ValidationError(
                "Not a valid phone number. Use e.g. (413) 555-0123, or +44 20 7946 0958 abroad."
            )


def text(label: str, limit: int, required: bool = False, **kwargs) -> StringField:
    validators = [DataRequired(message="Required.")] if required else [Optional()]
    return StringField(
        label, validators=[*validators, MaxLength(limit)], filters=[_strip], **kwargs
    )


def phone(label: str) -> StringField:
    return StringField(
        label,
        validators=[Optional(), MaxLength(30), Phone()],
        filters=[_strip],
        render_kw={"type": "tel", "autocomplete": "off"},
    )


class DemographicsForm(FlaskForm):
    """Everything front desk types about a patient; used to register and to edit."""

    given_name = text("Legal given name", 100, required=True)
    family_name = text("Legal family name", 100, required=True)
    preferred_name = text("Preferred name", 100)
    birth_date = DateField(
        "Date of birth",
        validators=[InputRequired(message="Required.")],
        invalid_value_message=DATE_MESSAGE,
        too_early_message="The date of birth cannot be before 1 Jan 1900.",
        too_late_message="The date of birth cannot be in the future.",
        render_kw={"min": EARLIEST_BIRTH_DATE.isoformat()},
    )
    sex_at_birth = SelectField(
        "Sex assigned at birth",
        choices=_choices({"": "Choose…", **SEX_AT_BIRTH}),
        validators=[InputRequired(message="Required.")],
    )
    gender_identity = text("Gender identity", 100)
    pronouns = text("Pronouns", 50, description="e.g. she/her, they/them")
    phone_mobile = phone("Mobile phone")
    phone_home = phone("Home phone")
    phone_work = phone("Work phone")
    email = text("Email", 254, render_kw={"type": "email", "autocomplete": "off"})
    address_line1 = text("Address line 1", 200)
    address_line2 = text("Address line 2", 200)
    city = text("City", 100)
    state = text("State / region", 100)
    postal_code = text("Postal code", 20)
    country = text("Country", 2, description="Two-letter code, e.g. US")
    preferred_language = text("Preferred language", 50)
    emergency_contact_name = text("Name", 200)
    emergency_contact_relationship = text("Relationship", 100)
    emergency_contact_phone = phone("Phone")
    insurance_payer = text("Payer", 200)
    insurance_member_id = text("Member ID", 64)
    insurance_group = text("Group number", 64)

    def __init__(self, *args, today: date | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today or date.today()

    def validate_birth_date(self, field):
        if field.data is None:
            return
        if field.data > self.today:
            raise ValidationError("The date of birth cannot be in the future.")
        if field.data < EARLIEST_BIRTH_DATE:
            raise ValidationError("The date of birth cannot be before 1 Jan 1900.")

    def validate_sex_at_birth(self, field):
        if field.data and field.data not in SEX_AT_BIRTH:
            raise ValidationError("Choose one of the listed values.")

    def validate_email(self, field):
        if not field.data or field.errors:
            return
        try:
            result = validate_email(field.data, check_deliverability=False)
        except EmailNotValidError as error:
            raise ValidationError(f"Not a valid email address: {error}") from None
        field.data = result.normalized

    def validate_country(self, field):
        if field.data and not (
            len(field.data) == 2 and field.data.isascii() and field.data.isalpha()
        ):
            raise ValidationError("Use the two-letter country code, e.g. US or CA.")
        if field.data:
            field.data = field.data.upper()

    def demographics(self) -> dict:
        """The validated values as model columns: blanks become None, phones E.164."""
        region = current_app.config["DEFAULT_PHONE_REGION"]
        values = {}
        for name in TEXT_FIELDS:
            values[name] = getattr(self, name).data or None
        for name in PHONE_FIELDS:
            typed = getattr(self, name).data
            values[name] = normalise_phone(typed, region) if typed else None
        values["birth_date"] = self.birth_date.data
        values["sex_at_birth"] = self.sex_at_birth.data
        return values


class RegistrationForm(DemographicsForm):
    """Registration adds the explicit override of the duplicate check."""

    different_person = BooleanField("This is a different person: register as a new patient")


class StatusForm(FlaskForm):
    """Mark a record inactive or deceased (with the date), or active again.

    When charted records are dated after the date of death the form comes back with a
    warning and ``confirm_after_death``; ``after_death_warned_for`` remembers the date the
    warning counted for, so a tick given for one date does not pass another unread.
    """

    status = SelectField("New status", choices=_choices(PATIENT_STATUSES))
    deceased_date = DateField(
        "Date of death",
        invalid_value_message=DATE_MESSAGE,
        too_early_message="The date of death cannot be before the date of birth.",
        too_late_message="The date of death cannot be in the future.",
    )
    confirm_after_death = BooleanField(
        "Mark deceased on this date anyway: the records dated after it stay as they are"
    )
    after_death_warned_for = HiddenField()

    def confirms_records_after_death(self) -> bool:
        """The box was ticked under the warning counted for the date now given."""
        return bool(
            self.confirm_after_death.data
            and self.deceased_date.data is not None
            and self.after_death_warned_for.data == self.deceased_date.data.isoformat()
        )

    def warn_of_records_after_death(self) -> None:
        """Show the warning's box (unticked) for the date now given."""
        self.after_death_warned_for.data = self.deceased_date.data.isoformat()
        self.confirm_after_death.data = False

    def __init__(self, *args, birth_date: date, today: date | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.birth_date = birth_date
        self.today = today or date.today()

    def validate_deceased_date(self, field):
        if self.status.data != "deceased":
            field.errors[:] = []  # the date only matters when marking the patient deceased
            raise StopValidation()
        if not (field.raw_data and field.raw_data[0].strip()):
            field.errors[:] = []
            raise StopValidation("Required when marking the patient deceased.")
        if field.data is None:
            return  # the "not a valid date" message is already there
        if field.data > self.today:
            raise ValidationError("The date of death cannot be in the future.")
        if field.data < self.birth_date:
            raise ValidationError("The date of death cannot be before the date of birth.")


class PatientSearchForm(FlaskForm):
    """The top-bar search box (CSRF is checked for every POST by CSRFProtect already)."""

    class Meta:
        csrf = False

    q = StringField("Find a patient", filters=[_strip])

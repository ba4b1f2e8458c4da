"""Forms of the problem, allergy and medication lists and of a visit's reconciliation.

Dates are checked against the clinic's today and the patient's birth date (given to the
form): an onset in the future or before birth is a typing mistake, not a fact to store.
"""

from __future__ import annotations

from datetime import date

from flask_wtf import FlaskForm
from wtforms import (
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from portal.charting.lists.services import NOT_A_CLASS
from portal.charting.models import (
    ALLERGY_CRITICALITIES,
    ALLERGY_SEVERITIES,
    ALLERGY_STATUSES,
    MEDICATION_SOURCES,
    MEDICATION_STATUSES,
    PROBLEM_STATUSES,
    RECONCILIATION_ACTIONS,
    SUBSTANCE_KINDS,
)
from portal.dates import DateField
from portal.ids import required_id
from portal.terminology.allergy_classes import find_class

COMMON_REACTIONS = (
    "Anaphylaxis",
    "Hives",
    "Rash",
    "Itching",
    "Swelling (angioedema)",
    "Throat tightness",
    "Wheezing",
    "Shortness of breath",
    "Low blood pressure",
    "Nausea",
    "Vomiting",
    "Diarrhea",
    "Abdominal pain",
    "Dizziness",
    "Headache",
)
COMMON_ROUTES = (
    "oral",
    "sublingual",
    "topical",
    "inhaled",
    "subcutaneous",
    "intramuscular",
    "intravenous",
    "rectal",
    "ophthalmic",
    "otic",
    "nasal",
    "transdermal",
)
MAX_OTHER_REACTIONS = 10
MAX_REACTION_LENGTH = 100
STALE_FORM = "The form is incomplete: reload the page."


def _choices(labels: dict, blank: str | None = None) -> list[SelectChoice]:
    options = {"": blank, **labels} if blank is not None else labels
    return [SelectChoice(value, label) for value, label in options.items()]


class FavouriteDiagnosisForm(FlaskForm):
    """Star or unstar a diagnosis (the code); ``q`` is the search to return to."""

    icd10_code = StringField("ICD-10-CM code", validators=[DataRequired(), Length(max=10)])
    q = StringField("Search", validators=[Optional(), Length(max=100)])


class MultiCheckboxField(SelectMultipleField):
    """A multiple choice shown as a list of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class _DatedForm(FlaskForm):
    """A form with dates that may not lie in the future or before the patient's birth."""

    def __init__(self, *args, birth_date: date | None = None, today: date | None = None, **kw):
        super().__init__(*args, **kw)
        self.birth_date = birth_date
        self.today = today

    def _check_date(self, field, *, future_ok: bool = False) -> None:
        value = field.data
        if value is None:
            return
        if not future_ok and self.today and value > self.today:
            raise ValidationError("This date is in the future.")
        if self.birth_date and value < self.birth_date:
            raise ValidationError("This date is before the patient's birth.")


class ProblemForm(_DatedForm):
    """A problem: its ICD-10-CM code, onset, status and comment."""

    icd10_code = StringField(
        "ICD-10-CM code",
        validators=[
            DataRequired("Choose a diagnosis from the search, or type its code."),
            Length(max=10, message="An ICD-10-CM code has at most 8 characters."),
        ],
    )
    onset_date = DateField("Onset date", validators=[Optional()])
    status = SelectField("Status", choices=_choices(PROBLEM_STATUSES), default="active")
    comment = TextAreaField(
        "Comment", validators=[Optional(), Length(max=1000, message="At most 1,000 characters.")]
    )
    version = IntegerField("Version", validators=[Optional()])

    def validate_onset_date(self, field):
        self._check_date(field)

    def values(self) -> dict:
        return {
            "icd10_code": self.icd10_code.data.strip(),
            "onset_date": self.onset_date.data,
            "status": self.status.data,
            "comment": (self.comment.data or "").strip(),
        }


class AllergyForm(_DatedForm):
    """An allergy: the substance, reactions, severity, criticality, onset, status."""

    substance_kind = SelectField("Kind of substance", choices=_choices(SUBSTANCE_KINDS))
    substance = StringField(
        "Substance",
        validators=[
            DataRequired("Enter the substance (a drug, drug class, food or other)."),
            Length(max=200, message="At most 200 characters."),
        ],
        description=(
            "Suggested as you type: common drugs (coded with RxNorm), or, for the kind "
            "“Drug class”, the classes prescriptions are checked against."
        ),
        # allergies.js points the suggestions at the classes when the kind is "Drug class".
        render_kw={
            "list": "drug-ingredients",
            "autocomplete": "off",
            "data-drug-list": "drug-ingredients",
            "data-class-list": "allergy-classes",
        },
    )
    reactions = MultiCheckboxField("Reactions", choices=[SelectChoice(r) for r in COMMON_REACTIONS])
    other_reactions = StringField(
        "Other reactions",
        validators=[Optional(), Length(max=500, message="At most 500 characters.")],
        description="Separate several with commas.",
    )
    severity = SelectField("Severity", choices=_choices(ALLERGY_SEVERITIES, "Not recorded"))
    criticality = SelectField(
        "Criticality", choices=_choices(ALLERGY_CRITICALITIES, "Not recorded")
    )
    onset_date = DateField("Onset date", validators=[Optional()])
    status = SelectField("Status", choices=_choices(ALLERGY_STATUSES), default="active")
    comment = TextAreaField(
        "Comment", validators=[Optional(), Length(max=1000, message="At most 1,000 characters.")]
    )
    version = IntegerField("Version", validators=[Optional()])

    def validate_onset_date(self, field):
        self._check_date(field)

    def validate_substance(self, field):
        # A class must be one of ours: an uncoded "class" could never be checked against a
        # prescription, and the allergy would look covered when it is not.
        if self.substance_kind.data == "drug_class" and find_class(field.data or "") is None:
            raise ValidationError(NOT_A_CLASS)

    def validate_other_reactions(self, field):
        others = self._others()
        if len(others) > MAX_OTHER_REACTIONS:
            raise ValidationError(f"At most {MAX_OTHER_REACTIONS} other reactions.")
        if any(len(other) > MAX_REACTION_LENGTH for other in others):
            raise ValidationError(f"Each reaction at most {MAX_REACTION_LENGTH} characters.")

    def _others(self) -> list[str]:
        return [
            part.strip() for part in (self.other_reactions.data or "").split(",") if part.strip()
        ]

    def values(self) -> dict:
        ticked = set(self.reactions.data or [])
        reactions = [r for r in COMMON_REACTIONS if r in ticked]
        reactions += [other for other in self._others() if other not in reactions]
        return {
            "substance_kind": self.substance_kind.data,
            "substance": self.substance.data.strip(),
            "reactions": reactions,
            "severity": self.severity.data,
            "criticality": self.criticality.data,
            "onset_date": self.onset_date.data,
            "status": self.status.data,
            "comment": (self.comment.data or "").strip(),
        }

    @classmethod
    def data_of(cls, allergy) -> dict:
        """An allergy as the form shows it (listed reactions ticked, the others as text)."""
        listed = [r for r in allergy.reactions or [] if r in COMMON_REACTIONS]
        others = [r for r in allergy.reactions or [] if r not in COMMON_REACTIONS]
        return {
            "substance_kind": allergy.substance_kind,
            "substance": allergy.substance,
            "reactions": listed,
            "other_reactions": ", ".join(others),
            "severity": allergy.severity or "",
            "criticality": allergy.criticality or "",
            "onset_date": allergy.onset_date,
            "status": allergy.status,
            "comment": allergy.comment,
            "version": allergy.version,
        }


def _text(label: str, limit: int, **kw) -> StringField:
    return StringField(
        label,
        validators=[Optional(), Length(max=limit, message=f"At most {limit} characters.")],
        **kw,
    )


class MedicationForm(_DatedForm):
    """A medication: drug, dose, route, frequency, dates, prescriber, source, status."""

    drug = StringField(
        "Drug",
        validators=[
            DataRequired("Enter the drug."),
            Length(max=200, message="At most 200 characters."),
        ],
        description="Common ingredients are suggested as you type.",
        render_kw={"list": "drug-ingredients", "autocomplete": "off"},
    )
    dose = _text("Dose", 100, description="e.g. 500 mg")
    route = _text("Route", 50, render_kw={"list": "medication-routes"})
    frequency = _text("Frequency", 100, description="e.g. twice a day")
    start_date = DateField("Start date", validators=[Optional()])
    stop_date = DateField("Stop date", validators=[Optional()])
    prescriber = _text("Prescriber", 200)
    source = SelectField("Source", choices=_choices(MEDICATION_SOURCES), default="self_reported")
    status = SelectField("Status", choices=_choices(MEDICATION_STATUSES), default="active")
    stop_reason = _text("Reason stopped", 500)
    version = IntegerField("Version", validators=[Optional()])

    def validate_start_date(self, field):
        self._check_date(field)

    def validate_stop_date(self, field):
        self._check_date(field, future_ok=True)
        if field.data and self.start_date.data and field.data < self.start_date.data:
            raise ValidationError("The stop date is before the start date.")

    def values(self) -> dict:
        return {
            name: getattr(self, name).data
            for name in (
                "drug",
                "dose",
                "route",
                "frequency",
                "start_date",
                "stop_date",
                "prescriber",
                "source",
                "status",
                "stop_reason",
            )
        }


class StopMedicationForm(_DatedForm):
    """Stopping a medication: the date and the reason."""

    stop_date = DateField("Stop date", validators=[InputRequired("Enter the stop date.")])
    reason = StringField(
        "Reason stopped",
        validators=[
            DataRequired("Say why the medication is stopped."),
            Length(max=500, message="At most 500 characters."),
        ],
    )
    version = IntegerField("Version", validators=[InputRequired(STALE_FORM)])

    def validate_stop_date(self, field):
        self._check_date(field)


class ReconcileForm(FlaskForm):
    """One medication's decision at a visit (one form per medication, told apart by prefix)."""

    action = RadioField(
        "Decision",
        choices=_choices(RECONCILIATION_ACTIONS),
        validators=[InputRequired("Choose continue, stop or change.")],
    )
    reason = _text("Reason", 500)
    dose = _text("New dose", 100)
    route = _text("New route", 50)
    frequency = _text("New frequency", 100)
    version = IntegerField("Version", validators=[InputRequired(STALE_FORM)])

    def validate_reason(self, field):
        if self.action.data == "stop" and not (field.data or "").strip():
            raise ValidationError("Say why the medication is stopped.")

    def changes(self) -> dict:
        return {name: getattr(self, name).data for name in ("dose", "route", "frequency")}


class DiagnosesForm(FlaskForm):
    """The ticked problems; the service checks they are this patient's. A value that is no
    id at all is refused here, so a garbled post never reads as "none ticked"."""

    problem_ids = SelectMultipleField(
        "Diagnoses addressed",
        coerce=required_id,
        validate_choice=False,
        invalid_value_message="Choose problems from this patient's list.",
    )

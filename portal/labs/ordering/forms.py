"""The lab order's forms: the catalog search and the order's details."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from portal.dates import DateField
from portal.labs.ordering.services import MAX_DIAGNOSES, NOTE_MAX, OrderDetails

PRINT_ONLY = ""


class TestSearchForm(FlaskForm):
    test_query = StringField(
        "Find a test or panel",
        validators=[Optional(), Length(max=100)],
        description="Type a name or a LOINC code; Tab to the results, Enter adds one.",
    )


class CheckboxesField(SelectMultipleField):
    """Several choices as checkboxes (each with its own label)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class OrderForm(FlaskForm):
    diagnoses = CheckboxesField(
        f"Diagnoses (up to {MAX_DIAGNOSES}, from the problem list)",
        choices=[],
        validate_choice=False,
    )
    priority = RadioField(
        "Priority", choices=[("routine", "Routine"), ("stat", "STAT")], default="routine"
    )
    fasting = BooleanField("The patient should fast")
    collection_date = DateField(
        "Collection date",
        validators=[Optional()],
        description="Leave empty to collect at the patient's next draw.",
    )
    note = TextAreaField(
        "Note to the lab",
        validators=[Optional(), Length(max=NOTE_MAX, message=f"At most {NOTE_MAX} characters.")],
    )
    connector = SelectField("Performing lab", choices=[], validate_choice=False)

    def offer(self, problems, labs) -> OrderForm:
        self.diagnoses.choices = [
            (p.icd10_code, f"{p.icd10_code} {p.description}") for p in problems
        ]
        self.connector.choices = [(lab.name, lab.title) for lab in labs] + [
            (PRINT_ONLY, "No lab connector: print the requisition")
        ]
        return self

    def details(self) -> OrderDetails:
        return OrderDetails(
            diagnoses=[code for code in (self.diagnoses.data or []) if code],
            priority=self.priority.data or "routine",
            fasting=bool(self.fasting.data),
            collection_date=self.collection_date.data,
            note=self.note.data,
            connector=self.connector.data or None,
        )

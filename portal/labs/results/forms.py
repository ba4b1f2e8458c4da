"""Forms of the results pages: signing off one result (with an optional comment), several
normal ones together, and the unmatched queue's patient lookup and attach."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import HiddenInput


class SignOffForm(FlaskForm):
    comment = TextAreaField(
        "Comment (optional)", validators=[Optional(), Length(max=1000)], render_kw={"rows": 2}
    )


class BulkSignOffForm(FlaskForm):
    """The inbox's checkboxes (one per normal result shown): the chosen ids. The choices are
    not fixed (the inbox moves on between showing and posting): the service decides what may
    be signed."""

    result_ids = SelectMultipleField("Results", coerce=int, validate_choice=False)


class LookupForm(FlaskForm):
    mrn = StringField("MRN", validators=[DataRequired(), Length(max=20)])


class AttachForm(FlaskForm):
    """One per candidate ("Attach to this patient"): the patient's id (the service loads it
    through the object-level check)."""

    patient_id = IntegerField("Patient", validators=[InputRequired()], widget=HiddenInput())

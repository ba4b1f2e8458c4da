"""The cancel request's form: a listed reason, and words for the pharmacy."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from portal.prescriptions.cancelling.services import CANCEL_REASONS, MAX_COMMENT


class CancelForm(FlaskForm):
    reason = SelectField(
        "Why is it cancelled?",
        choices=[("", "Choose a reason"), *CANCEL_REASONS.items()],
        validators=[DataRequired("Choose why the prescription is cancelled.")],
    )
    comment = StringField(
        "Note to the pharmacy (optional)",
        validators=[Length(max=MAX_COMMENT, message=f"At most {MAX_COMMENT} characters.")],
    )

"""The confirmation asked before a row is marked entered in error: a reason and a ticked box."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length

from portal.charting.entered_in_error.services import ERROR_REASON_MAX_CHARS


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def entered_in_error_form(thing: str) -> type[FlaskForm]:
    """The confirmation form for one kind of row (``thing``: "set", "immunization")."""

    class EnteredInErrorForm(FlaskForm):
        reason = StringField(
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
        confirm = BooleanField(
            f"I confirm this {thing} was entered in error",
            validators=[DataRequired(message="Tick the box to confirm.")],
        )

    return EnteredInErrorForm

"""The Rx inbox's forms: approving a pharmacy's request (refills and a comment, then the
signing dialog) and denying one (a reason from the standard list and a note)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange

from portal.prescriptions.inbox.answers import ANSWER_TEXT_MAX, DENIAL_REASONS
from portal.prescriptions.inbox.services import MAX_REFILLS


class ApproveForm(FlaskForm):
    refills = IntegerField(
        "Refills to authorise",
        default=0,
        validators=[
            InputRequired("Say how many refills (0 for none)."),
            NumberRange(0, MAX_REFILLS, f"Refills are 0 to {MAX_REFILLS}."),
        ],
    )
    comment = TextAreaField(
        "Comment to the pharmacy (optional)",
        validators=[Length(max=ANSWER_TEXT_MAX)],
        render_kw={"rows": 2, "maxlength": ANSWER_TEXT_MAX},
    )


class DenyForm(FlaskForm):
    reason = SelectField(
        "Reason for denying",
        choices=[("", "Choose…"), *DENIAL_REASONS.items()],
        validators=[InputRequired("Choose a reason.")],
    )
    note = TextAreaField(
        "Note to the pharmacy",
        validators=[Length(max=ANSWER_TEXT_MAX)],
        render_kw={"rows": 2, "maxlength": ANSWER_TEXT_MAX},
    )

"""Forms of notes: the editor's posts, note templates and snippets.

The note editor's own posts (draft, sign, addendum) carry one text and a version; their views
read them with NoteTextForm so the CSRF check and the field's errors work like everywhere else.
Length is checked by the services (a message, never a cut), not by a validator here.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from portal.charting.models import NOTE_KINDS
from portal.ids import optional_id

CHOOSE_FROM_LIST = "Choose one from the list."


class NoteTextForm(FlaskForm):
    """A note's text with the version the editor was loaded at (drafts, signing)."""

    text = TextAreaField("Note")
    version = HiddenField()
    cosigner_id = SelectField(
        "Route for co-signature to",
        coerce=optional_id,
        validate_choice=False,
        invalid_value_message=CHOOSE_FROM_LIST,
    )


class AddendumForm(FlaskForm):
    """An addendum's text, signed as it is added."""

    text = TextAreaField("Addendum", validators=[InputRequired("Write the addendum first.")])


class StartNoteForm(FlaskForm):
    """Which kind of note to start (provider or nursing), and from which template: an id,
    "blank" for none, or nothing for the visit type's default."""

    kind = HiddenField(validators=[InputRequired()])
    template_id = StringField()


class TemplateForm(FlaskForm):
    """A note template: its name, kind of note, visit type and text."""

    name = StringField(
        "Name", validators=[InputRequired("Give the template a name."), Length(max=100)]
    )
    note_kind = SelectField("Kind of note", choices=list(NOTE_KINDS.items()), default="provider")
    appointment_type_id = SelectField(
        "Visit type",
        coerce=optional_id,
        validate_choice=False,
        invalid_value_message=CHOOSE_FROM_LIST,
        description="Empty: the default for visits whose type has no template of its own.",
    )
    body = TextAreaField("Text", validators=[InputRequired("Write the template's text.")])


class SnippetForm(FlaskForm):
    """A snippet: its trigger, the text it expands to, and whether it is clinic-wide."""

    trigger = StringField(
        "Trigger",
        validators=[InputRequired("Give the trigger, e.g. .ros"), Length(max=32)],
        description="A dot and up to 31 letters or digits, e.g. .ros",
    )
    body = TextAreaField("Text it expands to", validators=[InputRequired("Write the text.")])
    clinic_wide = BooleanField("Clinic-wide (for every clinician)")

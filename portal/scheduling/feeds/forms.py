"""The form that creates a calendar feed for a provider."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.validators import DataRequired


class CalendarFeedForm(FlaskForm):
    """Create a calendar feed for a provider."""

    provider_id = SelectField("Provider", coerce=int, validators=[DataRequired("Choose one.")])

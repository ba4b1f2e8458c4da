"""The form a provider creates their own calendar feed with."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField


class MyCalendarFeedForm(FlaskForm):
    """A new feed of the signed-in provider's schedule."""

    shows_names = BooleanField("Show patients' names in this feed")

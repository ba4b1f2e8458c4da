"""Row ids as they arrive from outside: in URLs, form fields and query strings.

Every id column is an INTEGER: 32 bits on PostgreSQL (SQLite's hold 64). A larger number is
no row's id, yet handed to the database it is an error rather than "not found": PostgreSQL
answers "integer out of range" (DataError) and SQLite's driver raises OverflowError, a 500
either way. So ids are bounded where they come in, once for the whole app: the ``int`` URL
converter answers 404 beyond the range (``IdConverter``, installed by ``create_app``), and
form fields read ids with ``optional_id`` / ``required_id`` / ``IdField``, which refuse a
value that cannot be an id like any other unknown choice (a message beside the field).
"""

from __future__ import annotations

from werkzeug.routing import IntegerConverter, ValidationError
from wtforms import IntegerField

# The largest value of PostgreSQL's INTEGER (int4), the type of every id column.
MAX_ID = 2**31 - 1
_MAX_DIGITS = len(str(MAX_ID))


def parse_id(value) -> int | None:
    """The id ``value`` names (an int, or a string of ASCII digits), or None when it cannot
    be any row's id: blank, not a whole number, below 1 or beyond ``MAX_ID``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip() if value is not None else ""
        if not (text.isascii() and text.isdigit()):
            return None
        digits = text.lstrip("0") or "0"
        # Length first: never turn thousands of digits into a number just to refuse it.
        if len(digits) > _MAX_DIGITS:
            return None
        number = int(digits)
    return number if 1 <= number <= MAX_ID else None


def required_id(value) -> int:
    """WTForms ``coerce`` for an id that must be given: raises ValueError otherwise (the
    field shows its ``invalid_value_message``)."""
    number = parse_id(value)
    if number is None:
        raise ValueError("not an id")
    return number


def optional_id(value) -> int | None:
    """WTForms ``coerce`` for an id that may be left blank (None); anything else that is not
    an id raises ValueError (the field shows its ``invalid_value_message``).

    Blank is "", or "None": a choice whose value is None (e.g. "No room") is rendered by
    WTForms as ``value="None"``, and that is what the browser sends back.
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    return required_id(value)


class IdField(IntegerField):
    """A number field holding a row's id (a hidden patient id, a filter): a value that no
    row can have is refused with ``invalid_value_message`` instead of reaching a query."""

    def process_formdata(self, valuelist):
        if not valuelist or not (valuelist[0] or "").strip():
            self.data = None
            return
        self.data = parse_id(valuelist[0])
        if self.data is None:
            raise ValueError(self.invalid_value_message or "Not a valid id.")


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: the ids of rows, 1 to ``MAX_ID``; anything else matches
    no route (404), as an unknown id would."""

    def __init__(self, map, fixed_digits=0, min=1, max=MAX_ID, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> int:
        if len(value.lstrip("0")) > _MAX_DIGITS:
            raise ValidationError()  # beyond the range anyway: not worth converting
        return super().to_python(value)

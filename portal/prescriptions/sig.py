"""A prescription's directions (the "SIG") and the numbers beside them.

Pure functions, no database and no request: the composing screen, the signing step and the
printout all call the same ones, so a prescription is checked by one set of rules however it
was made.

- **The SIG builder** (``Sig`` + ``build_sig`` + ``directions_text``) turns the prescriber's
  choices into plain-language directions a patient can follow ("Take 1 tablet by mouth once
  daily for 30 days"). Nothing in the text it writes is an abbreviation: every list below is
  spelled out, so a structured SIG never needs the free-text checks' warnings.
- **Free-text directions** are allowed (not every regimen fits the builder) and read by
  ``directions_warnings``: the Joint Commission's "Do Not Use" list and a chosen part of ISMP's
  list of error-prone abbreviations, each warning naming the safe spelling. Warnings, not
  refusals: the prescriber may have a reason, and the signing step shows them again.
- **Oral liquids are dosed in mL** (ISMP; NCPDP's guidance on oral liquids asks e-prescribing
  software not to allow household units at all): a structured SIG for an oral solution or
  suspension in any other unit is refused beside the unit field, and so are written
  directions for one that dose it in teaspoons or tablespoons; teaspoons and tablespoons are
  never a unit of the builder (kitchen spoons vary, and a teaspoon read as a tablespoon is
  three times the dose).
- **Days supply** (``days_supply``) is computed only when it is certain; **quantity**,
  **refills** (with the federal limits of 21 CFR 1306 by DEA schedule), the **note to the
  pharmacist** and the **effective date** are checked here too, and a controlled
  prescription's printed quantity is written in words (``quantity_in_words``).

Every refusal is a ``Refused(message, field)`` naming the form field it belongs beside (the
names of ``portal.prescriptions.forms``), so a form and a service answer alike.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from portal.transaction import Refused

# DoseSpot's limits on what it carries (shared/DOSESPOT.md, "create pending prescription"):
# longer text would be cut or refused by the vendor after signing, so it is refused here first.
MAX_DIRECTIONS = 1000
MAX_PHARMACIST_NOTE = 210
MAX_AS_NEEDED_REASON = 100
MAX_EXTRA_INSTRUCTIONS = 200

# Refills: 0-11, with the first fill a year of monthly fills, the longest a prescription here
# lasts. 21 CFR 1306.12: a schedule II prescription is never refilled; 21 CFR 1306.22: a
# schedule III or IV prescription at most five times (within six months of its date).
# Schedule V follows the general rule.
MAX_REFILLS = 11
MAX_REFILLS_SCHEDULE_III_IV = 5

# A dose above this or a quantity above this is a typing slip (a missing decimal point), not
# a regimen this clinic writes; both allow three decimals (0.125 tablet, 2.5 mL).
MAX_DOSE = Decimal("9999")
MAX_QUANTITY = Decimal("9999")
MAX_DECIMALS = 3

# How long a prescriber may set for a course ("for 90 days"), and for a days supply they type:
# a prescription in this portal never covers more than a year.
MAX_DURATION_DAYS = 365
MAX_DAYS_SUPPLY = 365

# The effective date ("do not fill before"): not in the past, and at most six months ahead,
# the life of a schedule III or IV prescription (21 CFR 1306.22) and far enough for any
# planned start. A schedule II prescription at most 90 days ahead: the longest series of schedule II
# prescriptions one visit may issue covers a 90-day supply (21 CFR 1306.12(b)).
EFFECTIVE_DATE_MONTHS_AHEAD = 6
EFFECTIVE_DATE_DAYS_AHEAD_SCHEDULE_II = 90


# --- The builder's lists ------------------------------------------------------------------


@dataclass(frozen=True)
class DoseUnit:
    """A unit a dose is given in: its words for one and for several, the verb it asks for
    whatever the route (a patch is applied, a suppository inserted), and the routes it can
    be given by (a tablet is never injected: a builder that wrote "Inject 1 tablet" would
    put a slip of the mouse into a prescription; a regimen outside the table is written
    out)."""

    code: str
    singular: str
    plural: str
    routes: frozenset[str]
    verb: str | None = None

    def words(self, amount: Decimal) -> str:
        """The unit for this amount: plural above one ("1.5 tablets"), singular at or
        below ("0.5 tablet", "1 tablet")."""
        return self.plural if amount > 1 else self.singular


_EYES = ("right_eye", "left_eye", "both_eyes")
_EARS = ("right_ear", "left_ear", "both_ears")


def _routes(*codes: str) -> frozenset[str]:
    return frozenset(codes)


DOSE_UNITS: dict[str, DoseUnit] = {
    unit.code: unit
    for unit in (
        # Tablets: swallowed, under the tongue, or vaginal tablets.
        DoseUnit("tablet", "tablet", "tablets", _routes("oral", "sublingual", "vaginal")),
        # Capsules: swallowed, inhaled from a capsule inhaler, or vaginal capsules.
        DoseUnit("capsule", "capsule", "capsules", _routes("oral", "inhaled", "vaginal")),
        # mL: oral liquids, nebulizer solutions, injections, enemas, lotions.
        DoseUnit(
            "mL",
            "mL",
            "mL",
            _routes("oral", "inhaled", "subcutaneous", "intramuscular", "rectal", "topical"),
        ),
        # The brief's wording for an inhaler ("Take 2 puffs by inhalation"): the verb of the
        # puff, so that "inhale ... by inhalation" is never written.
        DoseUnit("puff", "puff", "puffs", _routes("inhaled", "nasal"), verb="Take"),
        DoseUnit("drop", "drop", "drops", _routes(*_EYES, *_EARS, "nasal")),
        # Insulin and other unit-dosed drugs: always the word, never "U" or "IU".
        DoseUnit("unit", "unit", "units", _routes("subcutaneous", "intramuscular")),
        DoseUnit(
            "application",
            "application",
            "applications",
            _routes("topical", *_EYES, *_EARS, "nasal", "vaginal", "rectal"),
            verb="Apply",
        ),
        DoseUnit("patch", "patch", "patches", _routes("transdermal", "topical"), verb="Apply"),
        DoseUnit(
            "suppository",
            "suppository",
            "suppositories",
            _routes("rectal", "vaginal"),
            verb="Insert",
        ),
        DoseUnit(
            "spray",
            "spray",
            "sprays",
            _routes("nasal", "sublingual", "oral", "topical"),
            verb="Use",
        ),
    )
}

# Units a prescriber may think of but must not use: refused with the reason, never written.
REFUSED_UNITS = {
    "teaspoon": "Teaspoons are not used: dose in mL (household spoons vary).",
    "tablespoon": "Tablespoons are not used: dose in mL (household spoons vary).",
}


@dataclass(frozen=True)
class Route:
    """A route: its label in the form, its words in the directions and its usual verb."""

    code: str
    label: str
    phrase: str
    verb: str


ROUTES: dict[str, Route] = {
    route.code: route
    for route in (
        Route("oral", "By mouth", "by mouth", "Take"),
        Route("sublingual", "Under the tongue (sublingual)", "under the tongue", "Place"),
        Route("inhaled", "Inhaled", "by inhalation", "Inhale"),
        Route("nasal", "In each nostril", "in each nostril", "Instill"),
        Route("topical", "On the skin (topical)", "topically", "Apply"),
        Route("right_eye", "In the right eye", "in the right eye", "Instill"),
        Route("left_eye", "In the left eye", "in the left eye", "Instill"),
        Route("both_eyes", "In both eyes", "in both eyes", "Instill"),
        Route("right_ear", "In the right ear", "in the right ear", "Instill"),
        Route("left_ear", "In the left ear", "in the left ear", "Instill"),
        Route("both_ears", "In both ears", "in both ears", "Instill"),
        Route("vaginal", "Vaginally", "vaginally", "Insert"),
        Route("rectal", "Rectally", "rectally", "Insert"),
        Route("subcutaneous", "Subcutaneous injection", "subcutaneously", "Inject"),
        Route("intramuscular", "Intramuscular injection", "intramuscularly", "Inject"),
        Route("transdermal", "On the skin (transdermal patch)", "to the skin", "Apply"),
    )
}


@dataclass(frozen=True)
class Frequency:
    """A standard frequency: its words (in the form and in the directions) and how many
    administrations a day it means at most (a range counts its shortest interval), for the
    days supply; None when the directions do not say ("as directed"). A single dose
    ("once": fluconazole, a dose before a procedure) is one day's supply whatever the
    quantity, and has no course length."""

    code: str
    phrase: str
    per_day: Fraction | None
    single_dose: bool = False


FREQUENCIES: dict[str, Frequency] = {
    frequency.code: frequency
    for frequency in (
        Frequency("once_daily", "once daily", Fraction(1)),
        Frequency("twice_daily", "twice daily", Fraction(2)),
        Frequency("three_times_daily", "three times daily", Fraction(3)),
        Frequency("four_times_daily", "four times daily", Fraction(4)),
        Frequency("every_4_hours", "every 4 hours", Fraction(6)),
        Frequency("every_4_to_6_hours", "every 4 to 6 hours", Fraction(6)),
        Frequency("every_6_hours", "every 6 hours", Fraction(4)),
        Frequency("every_8_hours", "every 8 hours", Fraction(3)),
        Frequency("every_12_hours", "every 12 hours", Fraction(2)),
        Frequency("every_morning", "every morning", Fraction(1)),
        Frequency("every_evening", "every evening", Fraction(1)),
        Frequency("at_bedtime", "at bedtime", Fraction(1)),
        # Spelled out: "QOD" is on the Joint Commission's "Do Not Use" list.
        Frequency("every_other_day", "every other day", Fraction(1, 2)),
        Frequency("twice_weekly", "twice weekly", Fraction(2, 7)),
        Frequency("once_weekly", "once weekly", Fraction(1, 7)),
        Frequency("once", "once", Fraction(1), single_dose=True),
        Frequency("as_directed", "as directed", None),
    )
}

DURATION_UNITS = {"days": 1, "weeks": 7}

# Dispense units the prescriber picks beside the quantity. A days supply is computed only for
# units that are counted and match the dose's unit (tablets for a dose in tablets): a liquid's
# volume is not (overfill, and a reconstituted suspension is thrown away after 10-14 days
# whatever is left), nor an inhaler, a tube or a pen, whose doses per package vary.
DISPENSE_UNITS = {
    "tablet": "Tablet",
    "capsule": "Capsule",
    "mL": "mL",
    "gram": "Gram",
    "patch": "Patch",
    "suppository": "Suppository",
    "inhaler": "Inhaler",
    "pen": "Pen",
    "vial": "Vial",
    "each": "Each",
}
COUNTED_UNITS = frozenset({"tablet", "capsule", "patch", "suppository"})

# Words of a dose form (RxNorm's DF names: "Oral Solution", "Oral Suspension", "Syrup",
# "Elixir"...) that make it a liquid taken by mouth, and words that mean it is a solid that
# only becomes one: "Tablet for Oral Suspension" is dosed in tablets, and a powder is not
# guessed at (an antibiotic's powder is made up in the bottle and measured in mL, a laxative's
# is taken by the gram or the packet), so the mL rule never refuses a regimen it cannot know.
_LIQUID_WORDS = ("solution", "suspension", "liquid", "drops", "concentrate", "emulsion")
_ALWAYS_ORAL_LIQUIDS = ("syrup", "elixir")
_SOLID_WORDS = ("tablet", "capsule", "granule", "pellet", "film", "lozenge", "powder for")


# A product's own route, as the catalog or the vendor names it, that makes it oral.
_ORAL_ROUTES = ("oral", "by mouth")


def is_oral_liquid(dose_form: str | None, product_route: str | None = None) -> bool:
    """Whether a product is a liquid taken by mouth, from its dose form (RxNorm's words,
    "Oral Suspension") or, where the form does not say "oral" (the vendor's "Suspension"),
    with its own route ("Oral")."""
    words = (dose_form or "").lower()
    if any(solid in words for solid in _SOLID_WORDS):
        return False
    if any(liquid in words for liquid in _ALWAYS_ORAL_LIQUIDS):
        return True
    oral = "oral" in words or (product_route or "").strip().lower() in _ORAL_ROUTES
    return oral and any(liquid in words for liquid in _LIQUID_WORDS)


# --- Numbers ------------------------------------------------------------------------------


def format_number(value: Decimal) -> str:
    """A dose or a quantity as it must be written: no trailing zero ("1", never "1.0"), a
    leading zero ("0.5", never ".5"), no exponent ("10", never "1E+1")."""
    text = format(value.normalize(), "f")
    return text if not text.startswith(".") else "0" + text


def parse_decimal(
    text: str | Decimal | None, *, field: str, what: str, maximum: Decimal
) -> Decimal:
    """A positive decimal of at most three places and at most ``maximum``; anything else is
    refused beside ``field`` in words naming ``what`` it is ("the dose")."""
    if isinstance(text, Decimal):
        value = text
    else:
        cleaned = (text or "").strip()
        if not cleaned:
            raise Refused(f"Enter {what}.", field)
        if len(cleaned) > 12 or not re.fullmatch(r"\d*\.?\d*", cleaned) or cleaned == ".":
            raise Refused(f"Enter {what} as a number, e.g. 1 or 0.5.", field)
        try:
            value = Decimal(cleaned)
        except InvalidOperation as error:  # unreachable after the pattern; kept as a guard
            raise Refused(f"Enter {what} as a number, e.g. 1 or 0.5.", field) from error
    if not value.is_finite() or value <= 0:
        raise Refused(f"{what.capitalize()} must be more than zero.", field)
    if -value.normalize().as_tuple().exponent > MAX_DECIMALS:
        raise Refused(f"{what.capitalize()} has at most {MAX_DECIMALS} decimals.", field)
    if value > maximum:
        raise Refused(
            f"{what.capitalize()} is at most {format_number(maximum)}: check the number.", field
        )
    return value


def parse_quantity(text: str | Decimal | None) -> Decimal:
    """The quantity to dispense: positive, at most three decimals, at most 9,999."""
    return parse_decimal(text, field="quantity", what="the quantity", maximum=MAX_QUANTITY)


_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _whole_in_words(number: int) -> str:
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {_whole_in_words(rest)}" if rest else "")
    thousands, rest = divmod(number, 1000)
    return f"{_whole_in_words(thousands)} thousand" + (f" {_whole_in_words(rest)}" if rest else "")


def quantity_in_words(quantity: Decimal) -> str:
    """A controlled prescription's quantity as printed: in words, then in figures, so that a
    figure cannot be changed unnoticed ("thirty (30)"). Decimals are read digit by digit
    after "point" ("two point five (2.5)"): one rule for every decimal, where fractions
    ("two and one half") would need one for each."""
    quantity = parse_quantity(quantity)
    figures = format_number(quantity)
    whole, _, decimals = figures.partition(".")
    words = _whole_in_words(int(whole))
    if decimals:
        words += " point " + " ".join(_ONES[int(digit)] for digit in decimals)
    return f"{words} ({figures})"


# --- The structured SIG -------------------------------------------------------------------


@dataclass(frozen=True)
class Sig:
    """A structured SIG, as checked by ``build_sig``."""

    dose_amount: Decimal
    dose_unit: str
    route: str
    frequency: str
    duration_amount: int | None = None
    duration_unit: str = "days"
    as_needed: bool = False
    as_needed_reason: str = ""
    extra_instructions: str = ""

    @property
    def duration_days(self) -> int | None:
        """The course's length in days, when one was given."""
        if self.duration_amount is None:
            return None
        return self.duration_amount * DURATION_UNITS[self.duration_unit]

    @property
    def text(self) -> str:
        """The plain-language directions (see ``directions_text``)."""
        return directions_text(self)

    def form_data(self) -> dict[str, str | int | bool | None]:
        """The builder's fields as a form shows them, for a draft, a favorite or a renewal
        to open where the prescriber left it (``SigForm(data=sig.form_data())``)."""
        return {
            "dose_amount": format_number(self.dose_amount),
            "dose_unit": self.dose_unit,
            "route": self.route,
            "frequency": self.frequency,
            "duration_amount": self.duration_amount,
            "duration_unit": self.duration_unit,
            "as_needed": self.as_needed,
            "as_needed_reason": self.as_needed_reason,
            "extra_instructions": self.extra_instructions,
        }


def _clean(text: str | None) -> str:
    """Typed text on one line: runs of white space (newlines, tabs) become one space."""
    return " ".join((text or "").split())


def build_sig(
    *,
    dose_amount: str | Decimal | None,
    dose_unit: str | None,
    route: str | None,
    frequency: str | None,
    duration_amount: int | None = None,
    duration_unit: str | None = "days",
    as_needed: bool = False,
    as_needed_reason: str | None = "",
    extra_instructions: str | None = "",
    dose_form: str | None = None,
    product_route: str | None = None,
) -> Sig:
    """Check the builder's choices and return the ``Sig``; a refusal names its field.

    ``dose_form`` and ``product_route`` are the product's (RxNorm's or the vendor's words,
    e.g. "Oral Suspension", or "Suspension" and "Oral"): an oral liquid must be dosed in mL.
    """
    amount = parse_decimal(dose_amount, field="dose_amount", what="the dose", maximum=MAX_DOSE)
    if dose_unit in REFUSED_UNITS:
        raise Refused(REFUSED_UNITS[dose_unit], "dose_unit")
    if dose_unit not in DOSE_UNITS:
        raise Refused("Choose the unit of the dose.", "dose_unit")
    if is_oral_liquid(dose_form, product_route) and dose_unit != "mL":
        raise Refused("An oral liquid is dosed in mL: choose mL.", "dose_unit")
    if route not in ROUTES:
        raise Refused("Choose the route.", "route")
    if route not in DOSE_UNITS[dose_unit].routes:
        raise Refused(
            f"A dose in {DOSE_UNITS[dose_unit].plural} is not given {ROUTES[route].phrase}: "
            "choose another route or unit, or write the directions out.",
            "route",
        )
    if frequency not in FREQUENCIES:
        raise Refused("Choose how often.", "frequency")
    if duration_amount is not None:
        if FREQUENCIES[frequency].single_dose:
            raise Refused("A single dose has no course length: leave it blank.", "duration_amount")
        if duration_unit not in DURATION_UNITS:
            raise Refused("Choose days or weeks.", "duration_unit")
        if duration_amount < 1:
            raise Refused("A course lasts at least 1 day.", "duration_amount")
        if duration_amount * DURATION_UNITS[duration_unit] > MAX_DURATION_DAYS:
            raise Refused(f"A course lasts at most {MAX_DURATION_DAYS} days.", "duration_amount")
    reason = _clean(as_needed_reason)
    if as_needed and not reason:
        # "As needed" alone leaves the patient (and the pharmacist) guessing what for.
        raise Refused("Say what it is needed for, e.g. pain.", "as_needed_reason")
    if len(reason) > MAX_AS_NEEDED_REASON:
        raise Refused(f"At most {MAX_AS_NEEDED_REASON} characters.", "as_needed_reason")
    extra = _clean(extra_instructions)
    if len(extra) > MAX_EXTRA_INSTRUCTIONS:
        raise Refused(f"At most {MAX_EXTRA_INSTRUCTIONS} characters.", "extra_instructions")
    return Sig(
        dose_amount=amount,
        dose_unit=dose_unit,
        route=route,
        frequency=frequency,
        duration_amount=duration_amount,
        duration_unit=duration_unit if duration_unit in DURATION_UNITS else "days",
        as_needed=bool(as_needed),
        as_needed_reason=reason if as_needed else "",
        extra_instructions=extra,
    )


def _verb(unit: DoseUnit, route: Route) -> str:
    return unit.verb or route.verb


def directions_text(sig: Sig) -> str:
    """The directions in plain language, in one order: verb, dose, route, how often, what
    for, how long, then the extra instructions ("Take 2 puffs by inhalation every 4 hours as
    needed for wheezing"; "Take 1 tablet by mouth twice daily for 10 days with food").

    Extra instructions starting with a capital letter are a sentence of their own ("...
    for 7 days. Do not crush."); otherwise they continue the directions ("with food").
    """
    unit = DOSE_UNITS[sig.dose_unit]
    route = ROUTES[sig.route]
    frequency = FREQUENCIES[sig.frequency]
    phrase = route.phrase
    if sig.route == "inhaled" and sig.dose_unit == "mL":
        phrase = "via nebulizer"  # a solution is inhaled through a nebulizer, not a puffer
    parts = [
        _verb(unit, route),
        format_number(sig.dose_amount),
        unit.words(sig.dose_amount),
        phrase,
        frequency.phrase,
    ]
    if sig.as_needed:
        parts.append(f"as needed for {sig.as_needed_reason}")
    if sig.duration_amount is not None:
        unit_word = sig.duration_unit if sig.duration_amount != 1 else sig.duration_unit[:-1]
        parts.append(f"for {sig.duration_amount} {unit_word}")
    text = " ".join(parts)
    extra = sig.extra_instructions
    if not extra:
        return text
    return f"{text}. {extra}" if extra[0].isupper() else f"{text} {extra}"


# --- Free-text directions -----------------------------------------------------------------


@dataclass(frozen=True)
class DirectionsWarning:
    """Something in typed directions that is known to be misread: what was found, why it is
    dangerous, and what to write instead."""

    code: str
    found: str
    message: str
    instead: str


@dataclass(frozen=True)
class _Rule:
    code: str
    pattern: re.Pattern
    why: str
    instead: str


def _word(alternatives: str, *, case_sensitive: bool = False) -> re.Pattern:
    """A pattern for a whole abbreviation: not inside a word ("QD" in "AQDX", "U" in "USE",
    "ug" in "drug"), but right after a number ("10U", "50ug") as prescribers type it."""
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.compile(rf"(?<![A-Za-z])(?:{alternatives})(?![A-Za-z])", flags)


# The set: the Joint Commission's official "Do Not Use" list in full (U, IU, QD, QOD, MS,
# MSO4, MgSO4, trailing and missing leading zeros) and, from ISMP's List of Error-Prone
# Abbreviations, Symbols and Dose Designations, the entries that turn up in typed outpatient
# directions (µg, cc, HS/qhs, SC/SQ, OD, TIW/BIW, D/C) and household spoons (oral liquids in
# mL). Left out: ISMP's entries that are ordinary English words in directions ("AS", "IN",
# "AD"), symbols (">", "@") that would fire on most of what a clinician types, and
# handwriting-only entries. Abbreviations that are also English words are matched in
# capitals only.
_RULES: tuple[_Rule, ...] = (
    _Rule(
        "unit",
        # "U-100" / "U100" is the labelled concentration of insulin, not a dose.
        # Not after a point either: "I.U." is the next rule's.
        re.compile(r"(?<![A-Za-z.])U(?![A-Za-z])(?!-?\d)", re.IGNORECASE),
        "is misread as 0 or 4 (a tenfold overdose) or as cc",
        'write "units"',
    ),
    _Rule(
        "international_unit",
        _word(r"I\.?U\.?"),
        "is misread as IV or 10",
        'write "units"',
    ),
    _Rule(
        "qod",
        _word(r"Q\.?\s?O\.?\s?D\.?"),
        "is misread as daily or four times daily",
        'write "every other day"',
    ),
    _Rule(
        "qd",
        _word(r"Q\.?\s?D\.?|Q1D"),
        "is misread as four times daily (QID)",
        'write "daily"',
    ),
    _Rule(
        "od",
        _word(r"O\.?D\.?"),
        "can mean once daily or the right eye",
        'write "daily" or "in the right eye"',
    ),
    _Rule(
        "morphine_or_magnesium",
        # "MS" in capitals only: "Ms" is a title.
        _word(r"(?i:MSO4|MgSO4)|MS", case_sensitive=True),
        "can mean morphine sulfate or magnesium sulfate",
        'write "morphine sulfate" or "magnesium sulfate" in full',
    ),
    _Rule(
        "microgram",
        re.compile(r"(?<![A-Za-z])(?:\u00b5g|\u03bcg|ug)(?![A-Za-z])", re.IGNORECASE),
        "is misread as mg (a thousandfold overdose)",
        'write "mcg"',
    ),
    _Rule(
        "cc",
        _word(r"cc"),
        "is misread as U (units)",
        'write "mL"',
    ),
    _Rule(
        "bedtime",
        _word(r"q\.?\s?hs|h\.?s\.?"),
        "is misread as half-strength or every hour",
        'write "at bedtime"',
    ),
    _Rule(
        "subcutaneous",
        _word(r"SC|SQ|sub[\s-]?q"),
        'is misread as SL (sublingual) or "5 every"',
        'write "subcutaneously"',
    ),
    _Rule(
        "weekly",
        _word(r"TIW|BIW"),
        "is misread as three (or two) times daily",
        'write "three times weekly" or "twice weekly"',
    ),
    _Rule(
        "discontinue",
        _word(r"D/C"),
        'can mean "discharge" or "discontinue"',
        "write the word in full",
    ),
    _Rule(
        "household_spoon",
        _word(r"tsp|tbsp|teaspoons?|tablespoons?|teaspoonfuls?|tablespoonfuls?"),
        "is a household measure that varies (oral liquids are dosed in mL)",
        "write the dose in mL",
    ),
)

# A decimal number in the text (thousands may be grouped: "1,000.0"), not part of a longer
# dotted run (a date, a version).
_DECIMAL = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d+)\.(\d+)(?!\d)(?!\.\d)")
_NO_LEADING_ZERO = re.compile(r"(?<![\w.])\.(\d+)(?!\d)(?!\.\d)")


def directions_warnings(text: str | None) -> list[DirectionsWarning]:
    """Warnings for typed directions, in the order found, each once per spelling.

    A stretch of text answers to the first rule that claims it ("q.o.d." is every other
    day, not also an "o.d."): the rules run longest spelling first.
    """
    text = text or ""
    warnings: list[DirectionsWarning] = []
    positions: list[int] = []
    seen: set[tuple[str, str]] = set()
    claimed = bytearray(len(text))  # 1 where a rule matched: linear in the text's length

    def add(code: str, match: re.Match, why: str, instead: str) -> None:
        start, end = match.span()
        if any(claimed[start:end]):
            return
        claimed[start:end] = b"\x01" * (end - start)
        found, position = match.group(0), start
        if (code, found) in seen:
            return
        seen.add((code, found))
        message = f'"{found}" {why}: {instead}.'
        warnings.append(DirectionsWarning(code, found, message, instead))
        positions.append(position)

    for match in _DECIMAL.finditer(text):
        whole, decimals = match.group(1), match.group(2)
        if not decimals.endswith("0"):
            continue
        decimals = decimals.rstrip("0")
        safe = whole + (f".{decimals}" if decimals else "")
        add(
            "trailing_zero",
            match,
            "has a trailing zero, misread as ten times the dose if the point is missed",
            f'write "{safe}"',
        )
    for match in _NO_LEADING_ZERO.finditer(text):
        add(
            "leading_zero",
            match,
            "has no leading zero, misread as a whole number if the point is missed",
            f'write "0{match.group(0)}"',
        )
    for rule in _RULES:
        for match in rule.pattern.finditer(text):
            add(rule.code, match, rule.why, rule.instead)
    order = sorted(range(len(warnings)), key=positions.__getitem__)
    return [warnings[index] for index in order]


_HOUSEHOLD_SPOON = next(rule for rule in _RULES if rule.code == "household_spoon")


def check_directions(
    text: str | None, dose_form: str | None = None, product_route: str | None = None
) -> str:
    """Typed directions as they will be sent: on one line, not empty, within the vendor's
    1,000 characters, and for an oral liquid (see ``is_oral_liquid``) never in household
    spoons. Refused beside ``directions``; the warnings are separate."""
    cleaned = _clean(text)
    if not cleaned:
        raise Refused("Enter the directions.", "directions")
    if len(cleaned) > MAX_DIRECTIONS:
        raise Refused(
            f"Directions are at most {MAX_DIRECTIONS:,} characters ({len(cleaned):,} now).",
            "directions",
        )
    if is_oral_liquid(dose_form, product_route) and _HOUSEHOLD_SPOON.pattern.search(cleaned):
        raise Refused(
            "An oral liquid is dosed in mL: write the dose in mL, not in spoons.", "directions"
        )
    return cleaned


# --- Days supply, refills, note, effective date ------------------------------------------


def days_supply(sig: Sig | None, quantity: Decimal | None, dispense_unit: str | None) -> int | None:
    """How many days the quantity lasts as directed, or None when that is not certain.

    Computed only for counted units dispensed in the dose's unit (tablets for a dose in
    tablets) and a frequency that says how often; as needed counts the most the directions
    allow (the supply lasts at least that long); a single dose is one day. Whole days,
    rounded down, at least one; no longer than the course when the directions give one.
    The prescriber may type another.
    """
    if sig is None or quantity is None or quantity <= 0:
        return None
    frequency = FREQUENCIES[sig.frequency]
    per_day = frequency.per_day
    if per_day is None or dispense_unit not in COUNTED_UNITS or dispense_unit != sig.dose_unit:
        return None
    if frequency.single_dose:
        return 1
    # Exact arithmetic: four tablets once weekly last 28 days, not 27.99...
    days = max(int(Fraction(quantity) / (Fraction(sig.dose_amount) * per_day)), 1)
    if sig.duration_days is not None:
        days = min(days, sig.duration_days)
    return min(days, MAX_DAYS_SUPPLY)


def check_days_supply(days: int) -> int:
    """A days supply the prescriber typed: 1 to 365."""
    if not 1 <= days <= MAX_DAYS_SUPPLY:
        raise Refused(f"The days supply is 1 to {MAX_DAYS_SUPPLY} days.", "days_supply")
    return days


def max_refills(schedule: int | None) -> int:
    """The most refills a prescription of this DEA schedule (None: not controlled) may have."""
    if schedule == 2:
        return 0
    if schedule in (3, 4):
        return MAX_REFILLS_SCHEDULE_III_IV
    return MAX_REFILLS


def check_refills(refills: int | None, schedule: int | None = None) -> int:
    """Refills 0-11; none for schedule II; at most 5 for schedules III and IV."""
    if refills is None:
        raise Refused("Enter the number of refills (0 for none).", "refills")
    if refills < 0 or refills > MAX_REFILLS:
        raise Refused(f"Refills are 0 to {MAX_REFILLS}.", "refills")
    if schedule == 2 and refills:
        raise Refused("A schedule II prescription cannot have refills: enter 0.", "refills")
    if refills > max_refills(schedule):
        raise Refused(
            f"A schedule {'III' if schedule == 3 else 'IV'} prescription has at most "
            f"{MAX_REFILLS_SCHEDULE_III_IV} refills.",
            "refills",
        )
    return refills


def check_pharmacist_note(text: str | None) -> str:
    """The note to the pharmacist (may be empty): at most 210 characters, the vendor's."""
    cleaned = (text or "").strip()
    if len(cleaned) > MAX_PHARMACIST_NOTE:
        raise Refused(
            f"The note to the pharmacist is at most {MAX_PHARMACIST_NOTE} characters "
            f"({len(cleaned)} now).",
            "pharmacist_note",
        )
    return cleaned


def _months_after(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day when it is shorter)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def latest_effective_date(today: date, schedule: int | None = None) -> date:
    """The latest effective date a prescription written today may carry."""
    if schedule == 2:
        return today + timedelta(days=EFFECTIVE_DATE_DAYS_AHEAD_SCHEDULE_II)
    return _months_after(today, EFFECTIVE_DATE_MONTHS_AHEAD)


def check_effective_date(day: date | None, today: date, schedule: int | None = None) -> date:
    """The effective date: today when not given; not in the past; at most six months ahead
    (90 days for schedule II). ``today`` is the clinic's."""
    if day is None:
        return today
    if day < today:
        raise Refused("The effective date cannot be in the past.", "effective_date")
    latest = latest_effective_date(today, schedule)
    if day > latest:
        if schedule == 2:
            message = (
                f"A schedule II prescription takes effect within "
                f"{EFFECTIVE_DATE_DAYS_AHEAD_SCHEDULE_II} days (by {latest.day} {latest:%B %Y})."
            )
        else:
            message = (
                f"The effective date is at most {EFFECTIVE_DATE_MONTHS_AHEAD} months ahead "
                f"(by {latest.day} {latest:%B %Y})."
            )
        raise Refused(message, "effective_date")
    return day

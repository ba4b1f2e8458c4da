"""UCUM units of the vital signs: the symbols shown, and conversions to canonical units.

Source: the Unified Code for Units of Measure (UCUM, Regenstrief Institute), case-sensitive
codes ("Cel", "[degF]", "kg", "[lb_av]", "cm", "[in_i]", "mm[Hg]", "/min", "%", "kg/m2",
"{score}"). The conversion factors are the exact definitions of the international pound and
inch. Canonical units (what is stored) are Cel, kg and cm; storage keeps a little more
precision than anyone types (0.01 °C, 1 g, 0.1 mm), so a value typed with one decimal in
either unit shows back exactly as typed.
"""

from __future__ import annotations

# UCUM code -> (symbol shown, decimals shown).
UNIT_SYMBOLS = {
    "Cel": ("°C", 1),
    "[degF]": ("°F", 1),
    "kg": ("kg", 2),
    "[lb_av]": ("lb", 1),
    "cm": ("cm", 1),
    "[in_i]": ("in", 1),
    "mm[Hg]": ("mmHg", 0),
    "/min": ("/min", 0),
    "%": ("%", 0),
    "kg/m2": ("kg/m²", 1),
    "{score}": ("/10", 0),
}
# Decimals kept in storage, per canonical unit.
STORED_DECIMALS = {"Cel": 2, "kg": 3, "cm": 2}
POUND_KG = 0.45359237  # exact, by definition
INCH_CM = 2.54  # exact, by definition


def to_canonical(value: float, unit: str) -> float:
    """A value typed in ``unit`` in its canonical unit (Cel, kg or cm), rounded for storage."""
    if unit == "[degF]":
        return round((value - 32) * 5 / 9, STORED_DECIMALS["Cel"])
    if unit == "[lb_av]":
        return round(value * POUND_KG, STORED_DECIMALS["kg"])
    if unit == "[in_i]":
        return round(value * INCH_CM, STORED_DECIMALS["cm"])
    return round(value, STORED_DECIMALS.get(unit, 2))


def from_canonical(value: float, unit: str) -> float:
    """A canonical value (Cel, kg, cm) in ``unit``, rounded as it is shown."""
    if unit == "[degF]":
        value = value * 9 / 5 + 32
    elif unit == "[lb_av]":
        value = value / POUND_KG
    elif unit == "[in_i]":
        value = value / INCH_CM
    return round(value, UNIT_SYMBOLS[unit][1])


def format_value(value: float, unit: str) -> str:
    """``value`` (already in ``unit``) with the unit's decimals and symbol: "98.6 °F"."""
    symbol, decimals = UNIT_SYMBOLS[unit]
    return f"{value:.{decimals}f} {symbol}"


def symbol(unit: str) -> str:
    """The symbol shown for ``unit``: "°F" for "[degF]"."""
    return UNIT_SYMBOLS[unit][0]

"""Lab units as labs write them, read as UCUM codes.

Labs send units in OBX-6 in many spellings ("mg/dl", "MG/DL", "K/uL", "mIU/mL", "10^3/uL");
results are stored with the UCUM code (Unified Code for Units of Measure, Regenstrief
Institute: case-sensitive, "mg/dL", "10*3/uL", "m[IU]/L"), so a trend line does not break
because the lab changed its spelling. Only spellings that mean the same quantity are mapped:
no conversion between units happens here (a value in mmol/L is never turned into mg/dL).
A unit we do not know is kept as the lab wrote it.
"""

from __future__ import annotations

# UCUM codes of the units common in outpatient lab results.
UCUM_LAB_UNITS = (
    "mg/dL",
    "g/dL",
    "g/L",
    "mg/L",
    "ug/dL",
    "ug/L",
    "ng/mL",
    "ng/dL",
    "pg/mL",
    "mmol/L",
    "umol/L",
    "nmol/L",
    "pmol/L",
    "meq/L",
    "U/L",
    "[IU]/L",
    "m[IU]/mL",
    "m[IU]/L",
    "u[IU]/mL",
    "[iU]/mL",
    "10*3/uL",
    "10*6/uL",
    "10*9/L",
    "10*12/L",
    "%",
    "fL",
    "pg",
    "s",
    "mm/h",
    "mL/min/{1.73_m2}",
    "mg/g{creat}",
    "mg/g",
    "{ratio}",
    "{INR}",
    "[pH]",
    "mosm/kg",
    "{copies}/mL",
    "/uL",
    "/[HPF]",
    "/[LPF]",
)

# Spellings labs use (compared case-insensitively, spaces removed) -> UCUM code.
_SPELLINGS = {
    "mg/dl": "mg/dL",
    "g/dl": "g/dL",
    "gm/dl": "g/dL",
    "g/l": "g/L",
    "mg/l": "mg/L",
    "ug/dl": "ug/dL",
    "mcg/dl": "ug/dL",
    "µg/dl": "ug/dL",
    "ug/l": "ug/L",
    "mcg/l": "ug/L",
    "ng/ml": "ng/mL",
    "ng/dl": "ng/dL",
    "pg/ml": "pg/mL",
    "mmol/l": "mmol/L",
    "umol/l": "umol/L",
    "µmol/l": "umol/L",
    "nmol/l": "nmol/L",
    "pmol/l": "pmol/L",
    "meq/l": "meq/L",
    "u/l": "U/L",
    "iu/l": "[IU]/L",
    "[iu]/l": "[IU]/L",
    "miu/ml": "m[IU]/mL",
    "m[iu]/ml": "m[IU]/mL",
    "miu/l": "m[IU]/L",
    "m[iu]/l": "m[IU]/L",
    "uiu/ml": "u[IU]/mL",
    "µiu/ml": "u[IU]/mL",
    "u[iu]/ml": "u[IU]/mL",
    "10*3/ul": "10*3/uL",
    "10^3/ul": "10*3/uL",
    "x10e3/ul": "10*3/uL",
    "k/ul": "10*3/uL",
    "thou/ul": "10*3/uL",
    "10*6/ul": "10*6/uL",
    "10^6/ul": "10*6/uL",
    "x10e6/ul": "10*6/uL",
    "m/ul": "10*6/uL",
    "mill/ul": "10*6/uL",
    "10*9/l": "10*9/L",
    "10^9/l": "10*9/L",
    "10*12/l": "10*12/L",
    "10^12/l": "10*12/L",
    "%": "%",
    "fl": "fL",
    "pg": "pg",
    "s": "s",
    "sec": "s",
    "seconds": "s",
    "mm/h": "mm/h",
    "mm/hr": "mm/h",
    "ml/min/1.73m2": "mL/min/{1.73_m2}",
    "ml/min/{1.73_m2}": "mL/min/{1.73_m2}",
    "mg/g{creat}": "mg/g{creat}",
    "mg/gcreat": "mg/g{creat}",
    "mg/g": "mg/g",
    "ratio": "{ratio}",
    "{ratio}": "{ratio}",
    "inr": "{INR}",
    "{inr}": "{INR}",
    "mosm/kg": "mosm/kg",
    "copies/ml": "{copies}/mL",
    "{copies}/ml": "{copies}/mL",
    "/ul": "/uL",
    "/hpf": "/[HPF]",
    "/lpf": "/[LPF]",
}


def to_ucum(unit: str | None) -> str | None:
    """The UCUM code for a unit as a lab wrote it, or the unit unchanged when we do not
    know it (None and blank stay None)."""
    if unit is None:
        return None
    text = unit.strip()
    if not text:
        return None
    if text in UCUM_LAB_UNITS:
        return text
    return _SPELLINGS.get(text.replace(" ", "").lower(), text)


def is_ucum(unit: str | None) -> bool:
    """True when ``unit`` is one of the UCUM codes this table knows."""
    return unit in UCUM_LAB_UNITS

"""[sandbox] Plausible results: what each analyte reports, in which unit, in which range.

The reference intervals are ordinary adult outpatient ones (they differ from lab to lab and
are not advice); a value is drawn around the middle of the interval, and now and then (the
``abnormal`` switch) beyond it, flagged H/L, or far beyond, flagged HH/LL. Analytes not
listed get a text result, and tests reported as present/absent a coded one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Numeric:
    units: str
    low: float
    high: float
    decimals: int = 0
    critical_low: float | None = None
    critical_high: float | None = None


@dataclass(frozen=True)
class Coded:
    normal: str  # code^text^system of the usual answer
    abnormal: str


NEGATIVE = "260385009^Negative^SCT"
POSITIVE = "10828004^Positive^SCT"
NOT_DETECTED = "260415000^Not detected^SCT"
DETECTED = "260373001^Detected^SCT"

ANALYTES: dict[str, Numeric | Coded] = {
    # chemistry
    "2345-7": Numeric("mg/dL", 70, 99, critical_low=40, critical_high=400),
    "1558-6": Numeric("mg/dL", 70, 99, critical_low=40, critical_high=400),
    "2339-0": Numeric("mg/dL", 70, 99, critical_low=40, critical_high=400),
    "3094-0": Numeric("mg/dL", 7, 20),
    "2160-0": Numeric("mg/dL", 0.6, 1.3, 2),
    "2951-2": Numeric("mmol/L", 136, 145, critical_low=120, critical_high=160),
    "2823-3": Numeric("mmol/L", 3.5, 5.1, 1, critical_low=2.8, critical_high=6.2),
    "2075-0": Numeric("mmol/L", 98, 107),
    "2028-9": Numeric("mmol/L", 22, 29),
    "17861-6": Numeric("mg/dL", 8.6, 10.3, 1, critical_low=6.5, critical_high=13),
    "2000-8": Numeric("mmol/L", 2.15, 2.55, 2),
    "1751-7": Numeric("g/dL", 3.5, 5.0, 1),
    "2885-2": Numeric("g/dL", 6.0, 8.3, 1),
    "1975-2": Numeric("mg/dL", 0.1, 1.2, 1),
    "1968-7": Numeric("mg/dL", 0.0, 0.3, 1),
    "1742-6": Numeric("U/L", 7, 56),
    "1920-8": Numeric("U/L", 10, 40),
    "6768-6": Numeric("U/L", 44, 147),
    "2324-2": Numeric("U/L", 9, 48),
    "1759-0": Numeric("{ratio}", 1.1, 2.5, 1),
    "62238-1": Numeric("mL/min/{1.73_m2}", 60, 120),
    "98979-8": Numeric("mL/min/{1.73_m2}", 60, 120),
    "33914-3": Numeric("mL/min/{1.73_m2}", 60, 120),
    "19123-9": Numeric("mg/dL", 1.7, 2.2, 1),
    "2777-1": Numeric("mg/dL", 2.5, 4.5, 1),
    "3084-1": Numeric("mg/dL", 3.5, 7.2, 1),
    "3040-3": Numeric("U/L", 10, 140),
    "1798-8": Numeric("U/L", 30, 110),
    "2157-6": Numeric("U/L", 30, 200),
    "2532-0": Numeric("U/L", 140, 280),
    "2692-2": Numeric("mosm/kg", 275, 295),
    "2524-7": Numeric("mmol/L", 0.5, 2.2, 1),
    # lipids
    "2093-3": Numeric("mg/dL", 125, 199),
    "2571-8": Numeric("mg/dL", 40, 149),
    "2085-9": Numeric("mg/dL", 40, 90),
    "13457-7": Numeric("mg/dL", 50, 99),
    "18262-6": Numeric("mg/dL", 50, 99),
    "43396-1": Numeric("mg/dL", 70, 129),
    "10835-7": Numeric("mg/dL", 0, 29),
    "1884-6": Numeric("mg/dL", 50, 89),
    "13965-9": Numeric("umol/L", 5, 15, 1),
    # diabetes, thyroid, hormones
    "4548-4": Numeric("%", 4.0, 5.6, 1),
    "3016-3": Numeric("m[IU]/L", 0.4, 4.0, 2),
    "11580-8": Numeric("m[IU]/L", 0.4, 4.0, 2),
    "3024-7": Numeric("ng/dL", 0.8, 1.8, 2),
    "3026-2": Numeric("ug/dL", 5.0, 12.0, 1),
    "3051-0": Numeric("pg/mL", 2.3, 4.2, 1),
    "3053-6": Numeric("ng/dL", 80, 200),
    "8099-4": Numeric("[IU]/mL", 0, 34),
    "20448-7": Numeric("u[IU]/mL", 2.6, 24.9, 1),
    "1986-9": Numeric("ng/mL", 0.8, 3.1, 1),
    "2143-6": Numeric("ug/dL", 6.2, 19.4, 1),
    "2986-8": Numeric("ng/dL", 264, 916),
    "2243-4": Numeric("pg/mL", 15, 350),
    "10501-5": Numeric("m[IU]/mL", 1.7, 8.6, 1),
    "2842-3": Numeric("ng/mL", 4.0, 23.0, 1),
    "2731-8": Numeric("pg/mL", 15, 65),
    "1989-3": Numeric("ng/mL", 30, 100),
    "2857-1": Numeric("ng/mL", 0.0, 4.0, 2),
    "10886-0": Numeric("ng/mL", 0.0, 1.0, 2),
    "19080-1": Numeric("m[IU]/mL", 0, 5),
    "21198-7": Numeric("m[IU]/mL", 0, 5),
    # iron, vitamins, inflammation, cardiac
    "2276-4": Numeric("ng/mL", 30, 400),
    "2498-4": Numeric("ug/dL", 60, 170),
    "2500-7": Numeric("ug/dL", 240, 450),
    "2502-3": Numeric("%", 20, 50),
    "2132-9": Numeric("pg/mL", 200, 900),
    "2284-8": Numeric("ng/mL", 3.0, 17.0, 1),
    "1988-5": Numeric("mg/L", 0.0, 10.0, 1),
    "30522-7": Numeric("mg/L", 0.0, 3.0, 1),
    "30341-2": Numeric("mm/h", 0, 20),
    "4537-7": Numeric("mm/h", 0, 20),
    "30934-4": Numeric("pg/mL", 0, 100),
    "33762-6": Numeric("pg/mL", 0, 125),
    "5671-3": Numeric("ug/dL", 0.0, 3.4, 1),
    "1834-1": Numeric("ng/mL", 0.0, 8.3, 1),
    "2039-6": Numeric("ng/mL", 0.0, 3.0, 1),
    "24108-3": Numeric("U/mL", 0, 37),
    "2458-8": Numeric("mg/dL", 70, 400),
    "2465-3": Numeric("mg/dL", 700, 1600),
    # urine
    "9318-7": Numeric("mg/g{creat}", 0, 29),
    "14959-1": Numeric("mg/g{creat}", 0, 29),
    "2161-8": Numeric("mg/dL", 20, 320),
    "17862-4": Numeric("mg/dL", 0, 30),
    "5803-2": Numeric("[pH]", 5.0, 8.0, 1),
    "5811-5": Numeric("{ratio}", 1.005, 1.030, 3),
    # coagulation
    "34714-6": Numeric("{INR}", 0.8, 1.2, 1, critical_high=5.0),
    "5902-2": Numeric("s", 11.0, 13.5, 1),
    "14979-9": Numeric("s", 25.0, 35.0, 1),
    "3255-7": Numeric("mg/dL", 200, 400),
    # blood count
    "6690-2": Numeric("10*3/uL", 4.5, 11.0, 1, critical_low=2.0, critical_high=30.0),
    "789-8": Numeric("10*6/uL", 4.2, 5.9, 2),
    "718-7": Numeric("g/dL", 12.0, 17.5, 1, critical_low=7.0, critical_high=20.0),
    "4544-3": Numeric("%", 36, 52),
    "787-2": Numeric("fL", 80, 100),
    "785-6": Numeric("pg", 27, 33),
    "786-4": Numeric("g/dL", 32, 36),
    "777-3": Numeric("10*3/uL", 150, 400, critical_low=50, critical_high=1000),
    "32623-1": Numeric("fL", 7.5, 11.5, 1),
    "770-8": Numeric("%", 40, 70),
    # present / absent
    "5804-0": Coded(NEGATIVE, POSITIVE),
    "5792-7": Coded(NEGATIVE, POSITIVE),
    "5797-6": Coded(NEGATIVE, POSITIVE),
    "5770-3": Coded(NEGATIVE, POSITIVE),
    "2106-3": Coded(NEGATIVE, POSITIVE),
    "2118-8": Coded(NEGATIVE, POSITIVE),
    "29771-3": Coded(NEGATIVE, POSITIVE),
    "2335-8": Coded(NEGATIVE, POSITIVE),
    "56888-1": Coded(NEGATIVE, POSITIVE),
    "22322-2": Coded(POSITIVE, NEGATIVE),
    "20507-0": Coded("11214006^Nonreactive^SCT", "11214006^Reactive^SCT"),
    "21613-5": Coded(NOT_DETECTED, DETECTED),
    "24111-7": Coded(NOT_DETECTED, DETECTED),
    "43304-5": Coded(NOT_DETECTED, DETECTED),
    "43305-2": Coded(NOT_DETECTED, DETECTED),
    "20447-9": Coded(NOT_DETECTED, DETECTED),
}


@dataclass(frozen=True)
class Value:
    """One OBX's value: type (OBX-2), value (OBX-5), units, range, flag (OBX-8)."""

    value_type: str
    value: str
    units: str = ""
    reference_range: str = ""
    flag: str = ""


def _format(number: float, decimals: int) -> str:
    return f"{number:.{decimals}f}"


def draw(loinc: str, rng: random.Random, abnormal: str = "random") -> Value:
    """A value for ``loinc``. ``abnormal``: "random" (about one in four abnormal, one in
    forty critical), "none", "all" (beyond the range), "critical"."""
    spec = ANALYTES.get(loinc)
    roll = rng.random()
    if abnormal == "none":
        beyond, critical = False, False
    elif abnormal == "all":
        beyond, critical = True, False
    elif abnormal == "critical":
        beyond, critical = True, True
    else:
        beyond, critical = roll < 0.25, roll < 0.025
    if spec is None:
        return Value(
            "ST",
            "Within normal limits" if not beyond else "See comment",
            flag="A" if beyond else "N",
        )
    if isinstance(spec, Coded):
        return Value("CWE", spec.abnormal if beyond else spec.normal, flag="A" if beyond else "N")
    width = spec.high - spec.low
    reference = f"{_format(spec.low, spec.decimals)}-{_format(spec.high, spec.decimals)}"
    if not beyond:
        number = spec.low + width * rng.uniform(0.15, 0.85)
        return Value("NM", _format(number, spec.decimals), spec.units, reference, "N")
    high = spec.low <= 0 or rng.random() < 0.7  # most abnormal values run high
    if critical:
        limit = spec.critical_high if high else spec.critical_low
        if limit is None:
            limit = spec.high + width * 3 if high else spec.low / 3
        number = limit * (1.1 if high else 0.9)
        flag = "HH" if high else "LL"
    else:
        number = (
            spec.high + width * rng.uniform(0.1, 0.6)
            if high
            else spec.low - width * rng.uniform(0.05, 0.3)
        )
        number = max(number, 0.0)
        flag = "H" if high else "L"
    if float(_format(number, spec.decimals)) in (spec.low, spec.high):
        number = number + (10**-spec.decimals if high else -(10**-spec.decimals))
    return Value("NM", _format(number, spec.decimals), spec.units, reference, flag)


def nudged(value: Value, rng: random.Random) -> Value:
    """A corrected value: the same analyte a little different (a corrected result)."""
    if value.value_type != "NM":
        return Value(value.value_type, value.value, value.units, value.reference_range, value.flag)
    decimals = len(value.value.split(".")[1]) if "." in value.value else 0
    number = float(value.value) * rng.choice((0.9, 0.93, 1.07, 1.1))
    low, _, high = value.reference_range.partition("-")
    flag = value.flag
    if low and high and flag in ("N", "H", "L"):
        flag = "H" if number > float(high) else "L" if number < float(low) else "N"
    return Value("NM", _format(number, decimals), value.units, value.reference_range, flag)

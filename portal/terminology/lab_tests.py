"""The catalog of orderable lab tests and panels, by LOINC code, and its search.

The data is ``terminology/data/lab_tests.csv``: each row a LOINC code read together with its
long common name in a public source (the ``verified_by`` column names which), our short
display name, the specimen, whether the patient should fast, the expected turnaround in days
(past it an order is overdue) and, for a panel, the analytes it reports. A code we could not
see in a source is not in the file: a wrong LOINC code files a result under the wrong test.

The catalog is small (a few hundred rows at most) and read-only, so it is loaded once per
process and searched in memory.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data" / "lab_tests.csv"
_LOINC = re.compile(r"^[0-9]{1,7}-[0-9]$")
KINDS = ("test", "panel")


@dataclass(frozen=True)
class LabTest:
    loinc: str
    name: str
    long_name: str
    kind: str
    specimen: str
    fasting: bool
    turnaround_days: int
    members: tuple[str, ...]
    verified_by: str

    @property
    def is_panel(self) -> bool:
        return self.kind == "panel"


def loinc_check_digit(number: str) -> str:
    """The LOINC check digit of the part before the hyphen (mod 10, as LOINC defines it):
    a typo in a code is caught when the file is loaded, not when a result is misfiled."""
    digits = [int(d) for d in reversed(number)]
    total = 0
    for position, digit in enumerate(digits):
        if position % 2 == 0:  # rightmost and every other: doubled
            doubled = digit * 2
            total += doubled // 10 + doubled % 10
        else:
            total += digit
    return str((10 - total % 10) % 10)


def is_valid_loinc(code: str) -> bool:
    """True for a well-formed LOINC code whose check digit is right."""
    if not _LOINC.match(code or ""):
        return False
    number, check = code.split("-")
    return loinc_check_digit(number) == check


def _read(path: Path) -> dict[str, LabTest]:
    with path.open(newline="", encoding="utf-8") as handle:
        lines = (line for line in handle if not line.startswith("#"))
        rows = list(csv.DictReader(lines))
    tests: dict[str, LabTest] = {}
    for row in rows:
        code = row["loinc"].strip()
        if not is_valid_loinc(code):
            raise ValueError(f"lab_tests.csv: {code!r} is not a valid LOINC code")
        if code in tests:
            raise ValueError(f"lab_tests.csv: {code} twice")
        if row["kind"] not in KINDS:
            raise ValueError(f"lab_tests.csv: {code} has an unknown kind {row['kind']!r}")
        if not row["verified_by"].strip():
            raise ValueError(f"lab_tests.csv: {code} says no source")
        tests[code] = LabTest(
            loinc=code,
            name=row["name"].strip(),
            long_name=row["long_name"].strip(),
            kind=row["kind"],
            specimen=row["specimen"].strip(),
            fasting=row["fasting"].strip() == "1",
            turnaround_days=int(row["turnaround_days"]),
            members=tuple(row["members"].split()),
            verified_by=row["verified_by"].strip(),
        )
    for test in tests.values():
        unknown = [member for member in test.members if member not in tests]
        if unknown:
            raise ValueError(f"lab_tests.csv: {test.loinc} has members not in the file: {unknown}")
    return tests


@lru_cache(maxsize=1)
def catalog() -> dict[str, LabTest]:
    """Every orderable test by LOINC code (loaded once per process)."""
    return _read(DATA)


def get(loinc: str) -> LabTest | None:
    """The catalog's test for a LOINC code, or None."""
    return catalog().get(loinc)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def search(text: str, limit: int = 20) -> list[LabTest]:
    """Tests whose code is ``text`` or whose names hold every typed word as a word prefix
    ("lip pan", "a1c", "tsh"), panels first, then by short name."""
    text = (text or "").strip()
    if not text:
        return []
    if text in catalog():
        return [catalog()[text]]
    wanted = _words(text)
    found = []
    for test in catalog().values():
        words = _words(f"{test.name} {test.long_name}")
        if all(any(word.startswith(w) for word in words) for w in wanted):
            found.append(test)
    found.sort(key=lambda t: (not t.is_panel, t.name.lower()))
    return found[:limit]

"""The clinic's map from our catalog's tests (LOINC) to the performing lab's own codes.

Many labs take orders only under their own test codes. An admin pastes the lab's list into
the connector's settings, one line per test::

    # comments and blank lines are ignored
    24331-1=LIPID^Lipid panel
    4548-4=A1C^Hemoglobin A1c

A line is refused (with its number) when the LOINC code is malformed, has a wrong check
digit or is not in our catalog, when a code is mapped twice, or when the lab's code is
empty or holds one of HL7's separators (it travels inside OBR-4, a coded field).
"""

from __future__ import annotations

from portal.terminology import lab_tests

HL7_SPECIAL = set("|^~\\&\r\n")
CODE_MAX = 20
NAME_MAX = 199


class BadCodeMap(ValueError):
    """A line of the map is wrong; ``str()`` names the line and what to fix."""


def parse_code_map(text: str | None) -> dict[str, tuple[str, str]]:
    """LOINC -> (lab code, lab name) from the settings' text; ``BadCodeMap`` on a bad line."""
    mapping: dict[str, tuple[str, str]] = {}
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        loinc, equals, rest = line.partition("=")
        loinc = loinc.strip()
        if not equals:
            raise BadCodeMap(f"Line {number}: write LOINC=LABCODE^Lab name.")
        if not lab_tests.is_valid_loinc(loinc):
            raise BadCodeMap(f"Line {number}: {loinc!r} is not a valid LOINC code.")
        if lab_tests.get(loinc) is None:
            raise BadCodeMap(f"Line {number}: {loinc} is not a test of our catalog.")
        if loinc in mapping:
            raise BadCodeMap(f"Line {number}: {loinc} is mapped twice.")
        code, _, name = rest.partition("^")
        code, name = code.strip(), name.strip()
        if not code:
            raise BadCodeMap(f"Line {number}: the lab's code is missing.")
        if len(code) > CODE_MAX or len(name) > NAME_MAX:
            raise BadCodeMap(f"Line {number}: the lab's code or name is too long.")
        if HL7_SPECIAL & set(code + name):
            raise BadCodeMap(f"Line {number}: the lab's code and name may not hold | ^ ~ \\ &.")
        mapping[loinc] = (code, name or lab_tests.get(loinc).name)
    return mapping

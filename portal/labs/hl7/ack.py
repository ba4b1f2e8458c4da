"""The acknowledgement we send for an inbound message (original mode, HL7 v2 chapter 2).

AA: stored, we will process it. AE: we stored it but its content cannot be filed (a field
we need is unreadable); the lab should correct and resend. AR: rejected as a message (not
HL7, cannot be decoded, MSH fields missing, a type or version we do not take). MSA-3 carries
the reason in words and the ERR segment the HL7 error code (table 0357) and where it is.

Built as text rather than with python-hl7's ``create_ack``: an ACK must be made for input
that does not parse at all (garbage, no MSH), where there is no message to answer from.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal.timeutil import utcnow

APPLICATION = "PRACTICE_PORTAL"
FACILITY = "PORTAL"

# HL7 table 0357 (message error condition codes) used here.
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
SEGMENT_SEQUENCE_ERROR = "100"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_VERSION = "203"
APPLICATION_ERROR = "207"
_CODE_TEXT = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "207": "Application internal error",
}


@dataclass(frozen=True)
class Problem:
    """Why a message is not accepted: AE or AR, the words, the 0357 code, and where
    (segment id, field number; both optional)."""

    ack_code: str
    text: str
    error_code: str = APPLICATION_ERROR
    segment: str | None = None
    field: int | None = None


def escape(text: str) -> str:
    """Text made safe inside an HL7 field with the standard separators."""
    text = text.replace("\\", "\\E\\")
    for char, code in (("|", "F"), ("^", "S"), ("&", "T"), ("~", "R")):
        text = text.replace(char, f"\\{code}\\")
    return "".join(ch if ch.isprintable() else " " for ch in text)


def build_ack(
    *,
    ack_code: str,
    control_id: str | None,
    version: str | None,
    receiving_application: str = "",
    receiving_facility: str = "",
    trigger: str = "R01",
    problem: Problem | None = None,
    ack_control_id: str,
) -> str:
    """The ACK message text (segments separated by CR). ``control_id`` is the message
    answered (MSA-2), ``ack_control_id`` this ACK's own control id."""
    version = version if version in ("2.3", "2.3.1", "2.4", "2.5", "2.5.1") else "2.5.1"
    stamp = utcnow().strftime("%Y%m%d%H%M%S+0000")
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            APPLICATION,
            FACILITY,
            escape(receiving_application),
            escape(receiving_facility),
            stamp,
            "",
            f"ACK^{escape(trigger)}^ACK" if version >= "2.4" else f"ACK^{escape(trigger)}",
            escape(ack_control_id),
            "P",
            version,
        ]
    )
    text = escape(problem.text)[:80] if problem else ""
    segments = [msh, "|".join(["MSA", ack_code, escape(control_id or ""), text])]
    if problem:
        segments.append(_err(problem, version))
    return "\r".join(segments) + "\r"


def _err(problem: Problem, version: str) -> str:
    """The ERR segment: ERR-1 (ELD) before 2.5; ERR-2 (location), ERR-3 (the 0357 code)
    and ERR-4 (severity) from 2.5, where ERR-1 is withdrawn."""
    code = problem.error_code
    coded = f"{code}&{_CODE_TEXT.get(code, '')}&HL70357"
    segment = problem.segment or ""
    sequence = "1" if segment else ""
    field = str(problem.field or "")
    if version in ("2.3", "2.3.1", "2.4"):
        return f"ERR|{segment}^{sequence}^{field}^{coded}"
    location = "^".join([segment, sequence, field]) if segment else ""
    return f"ERR||{location}|{coded.replace('&', '^')}|E"

"""Reading the lab's acknowledgement of an order (HL7 v2 original and enhanced mode).

MSA-1 says what the lab did: AA took it, AE found an error in it, AR refused it. Enhanced
mode's commit acknowledgements (CA, CE, CR) say the same at the transport level and are
mapped to AA, AE and AR. The reason is MSA-3 (withdrawn after 2.4, still sent by many labs)
or the ERR segment: ERR-8 user message, ERR-3 error code text, or ERR-1's code text (before
2.5). Parsed with python-hl7.
"""

from __future__ import annotations

from dataclasses import dataclass

import hl7

from portal.integrations.hl7lab.mllp import Garbage

CODES = {"AA": "AA", "AE": "AE", "AR": "AR", "CA": "AA", "CE": "AE", "CR": "AR"}
REASON_MAX_CHARS = 200


@dataclass(frozen=True)
class ParsedAck:
    code: str
    text: str
    control_id: str


def parse_ack(data: bytes, encoding: str = "utf-8") -> ParsedAck:
    """The code, reason and answered control id of an ACK; ``Garbage`` when ``data`` is
    not an acknowledgement (not HL7, no MSA, an unknown code)."""
    text = data.decode(encoding, errors="replace").replace("\r\n", "\r").replace("\n", "\r")
    text = text.strip("\r")
    if not text.startswith("MSH"):
        raise Garbage("the answer is not an HL7 message")
    try:
        message = hl7.parse(text)
        message.segment("MSA")
    except (KeyError, IndexError, ValueError, hl7.ParseException) as error:
        raise Garbage("the answer has no MSA segment") from error
    code = CODES.get(_get(message, "MSA", 1).upper())
    if code is None:
        raise Garbage("the answer's MSA-1 is not an acknowledgement code")
    reason = _get(message, "MSA", 3) or _err_text(message)
    return ParsedAck(code=code, text=_clean(reason), control_id=_get(message, "MSA", 2))


def _get(message, segment: str, field: int, component: int = 1, subcomponent: int = 1) -> str:
    """One value (unescaped by python-hl7), "" when the segment or field is absent."""
    try:
        value = message.extract_field(segment, 1, field, 1, component, subcomponent)
    except (KeyError, IndexError):
        return ""
    return str(value or "")


def _err_text(message) -> str:
    """The first ERR segment's words: ERR-8 (user message), else ERR-3's text (2.5+),
    else the text of ERR-1's code (before 2.5), else that code's identifier."""
    return (
        _get(message, "ERR", 8)
        or _get(message, "ERR", 3, 2)
        or _get(message, "ERR", 1, 4, 2)
        or _get(message, "ERR", 1, 4, 1)
    )


def _clean(text: str) -> str:
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(printable.split())[:REASON_MAX_CHARS]

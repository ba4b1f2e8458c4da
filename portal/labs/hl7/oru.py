"""Reading an inbound result message (ORU^R01, HL7 v2.3 to 2.5.1) into plain data.

``read_message(raw)`` never raises: it returns a ``Reading`` with the header as far as it
could be read (to answer and to deduplicate), the results, and the ``Problem`` that makes
the answer AE or AR. The rules:

- bytes are decoded with the character set MSH-18 names (empty: UTF-8, which ASCII is a
  part of); a name we do not know, or bytes that are not that character set: AR;
- segments may end in CR, LF or CRLF (labs and files differ); anything before MSH is junk;
- MSH-9 (type), MSH-10 (control id), MSH-11 (processing id) and MSH-12 (version) are
  required: AR; only ORU^R01 in versions 2.3, 2.3.1, 2.4, 2.5, 2.5.1: AR;
- a PID, an OBR and an OBX are required, and dates we read (PID-7, OBR-7, OBX-14) must be
  dates: AE, since the lab can correct the content and resend;
- unknown and Z segments are ignored; values are kept as sent (an OBX of a megabyte too).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from datetime import date, datetime

import hl7

from portal.labs.hl7 import ack
from portal.labs.hl7.fields import BadDate, day, instant, part, repetitions, whole
from portal.terminology.lab_units import to_ucum

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
# MSH-18 names (HL7 table 0211) -> Python codec.
CHARSETS = {
    "": "utf-8",
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
}
ABNORMAL_FLAGS = ("L", "H", "LL", "HH", "<", ">", "N", "A", "AA", "U", "D", "B", "W", "S", "R")
# OBX-11 (HL7 table 0085) -> what we store: P, F, C, X.
RESULT_STATUS = {
    "F": "F",
    "C": "C",
    "P": "P",
    "R": "P",  # not yet verified
    "S": "P",  # partial
    "I": "P",  # pending
    "X": "X",  # cannot be obtained
    "D": "X",  # deleted
    "W": "X",  # posted as wrong
}
TEXT_TYPES = ("ST", "TX", "FT")
CODED_TYPES = ("CE", "CWE")
_SEGMENT_START = re.compile(r"MSH")


class Rejected(Exception):
    """The message cannot be read as an accepted result message."""

    def __init__(self, problem: ack.Problem):
        super().__init__(problem.text)
        self.problem = problem


@dataclass
class Header:
    sending_application: str = ""
    sending_facility: str = ""
    control_id: str = ""
    message_type: str = ""
    trigger: str = ""
    version: str = ""


@dataclass
class Identifier:
    value: str
    type_code: str  # CX-5: MR, PI, ...
    authority: str  # CX-4


@dataclass
class PatientIdentity:
    identifiers: list[Identifier]
    family_name: str
    given_name: str
    birth_date: date | None

    @property
    def mrns(self) -> list[str]:
        """Identifiers that may be our MRN: those typed MR, and untyped ones (2.3 labs often
        send none); never typed others (a lab's own accession or an insurance number)."""
        found = [i.value for i in self.identifiers if i.type_code in ("MR", "")]
        return list(dict.fromkeys(v for v in found if v))


@dataclass
class Observation:
    set_id: str
    value_type: str
    code: str
    code_system: str
    name: str
    sub_id: str
    value_text: str | None
    value_numeric: float | None
    units: str | None
    reference_range: str | None
    abnormal_flag: str | None
    status: str
    observed_at: datetime | None
    performing_lab: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def loinc(self) -> str | None:
        return self.code if self.code_system in ("LN", "LNC") else None


@dataclass
class ResultGroup:
    """One OBR and the OBX that follow it."""

    placer_order_number: str
    filler_order_number: str
    code: str
    code_system: str
    name: str
    observed_at: datetime | None
    observations: list[Observation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Reading:
    header: Header
    patient: PatientIdentity | None = None
    groups: list[ResultGroup] = field(default_factory=list)
    problem: ack.Problem | None = None

    @property
    def ack_code(self) -> str:
        return self.problem.ack_code if self.problem else "AA"


def decode(raw: bytes) -> str:
    """The message's text in the character set its MSH-18 names (see the module notes)."""
    if not raw.strip():
        raise Rejected(ack.Problem("AR", "empty message", ack.SEGMENT_SEQUENCE_ERROR))
    start = raw.find(b"MSH")
    if start < 0:
        raise Rejected(ack.Problem("AR", "not an HL7 message: no MSH segment", "100", "MSH"))
    raw = raw[start:]
    charset_name = _charset_field(raw)
    codec = CHARSETS.get(charset_name.upper())
    if codec is None:
        raise Rejected(
            ack.Problem("AR", f"character set {charset_name[:20]} is not supported", "102")
        )
    try:
        text = codecs.decode(raw, codec)
    except UnicodeDecodeError:
        raise Rejected(
            ack.Problem("AR", f"the message is not valid {codec} (MSH-18)", "102", "MSH", 18)
        ) from None
    if "\x00" in text:
        raise Rejected(ack.Problem("AR", "the message holds binary data", "102"))
    return text.replace("\r\n", "\r").replace("\n", "\r")


def _charset_field(raw: bytes) -> str:
    """MSH-18 read from the bytes (ASCII-safe: the header is ASCII in every charset)."""
    first = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
    if len(first) < 4:
        return ""
    separator = first[3:4]
    fields = first.split(separator)
    # fields[0] is "MSH", fields[1] MSH-2: MSH-n is fields[n-1].
    if len(fields) < 18:
        return ""
    return fields[17].decode("ascii", "replace").strip()


def read_header(text: str) -> tuple[hl7.Message, Header]:
    """Parse the text and read the MSH fields we need to answer and deduplicate."""
    if len(text) < 8 or text[3] in "\r\n" or text[3].isalnum():
        raise Rejected(ack.Problem("AR", "MSH has no field separator", "102", "MSH", 1))
    try:
        message = hl7.parse(text)
        msh = message.segment("MSH")
    except Exception:  # the library's errors vary by how the text is broken
        raise Rejected(ack.Problem("AR", "MSH cannot be parsed", "100", "MSH")) from None
    header = Header(
        sending_application=part(msh, 3),
        sending_facility=part(msh, 4),
        control_id=whole(msh, 10).strip(),
        message_type=part(msh, 9, 1, 1).strip(),
        trigger=part(msh, 9, 1, 2).strip(),
        version=part(msh, 12, 1, 1).strip(),
    )
    return message, header


def _check_header(msh, header: Header) -> None:
    required = ((9, header.message_type), (10, header.control_id), (11, part(msh, 11)))
    for number, value in required:
        if not value.strip():
            raise Rejected(
                ack.Problem(
                    "AR", f"MSH-{number} is missing", ack.REQUIRED_FIELD_MISSING, "MSH", number
                )
            )
    if not header.version:
        raise Rejected(
            ack.Problem("AR", "MSH-12 is missing", ack.REQUIRED_FIELD_MISSING, "MSH", 12)
        )
    if header.version not in SUPPORTED_VERSIONS:
        raise Rejected(
            ack.Problem(
                "AR",
                f"version {header.version[:10]} is not supported (2.3 to 2.5.1)",
                ack.UNSUPPORTED_VERSION,
                "MSH",
                12,
            )
        )
    if header.message_type != "ORU":
        raise Rejected(
            ack.Problem(
                "AR",
                f"message type {header.message_type[:10]} is not accepted here (ORU)",
                ack.UNSUPPORTED_MESSAGE_TYPE,
                "MSH",
                9,
            )
        )
    if header.trigger not in ("R01", ""):
        raise Rejected(
            ack.Problem(
                "AR",
                f"event {header.trigger[:10]} is not accepted here (R01)",
                ack.UNSUPPORTED_EVENT_CODE,
                "MSH",
                9,
            )
        )


def read_message(raw: bytes) -> Reading:
    """Read a raw inbound message (see the module notes). Never raises."""
    header = Header()
    try:
        text = decode(raw)
        message, header = read_header(text)
        _check_header(message.segment("MSH"), header)
        patient, groups = _read_body(message)
    except Rejected as rejected:
        return Reading(header=header, problem=rejected.problem)
    except BadDate as bad:
        return Reading(header=header, problem=ack.Problem("AE", str(bad), ack.DATA_TYPE_ERROR))
    except Exception:  # a shape of input nobody foresaw: refuse it, never crash
        return Reading(
            header=header,
            problem=ack.Problem("AE", "the message could not be read", ack.APPLICATION_ERROR),
        )
    return Reading(header=header, patient=patient, groups=groups)


def _read_body(message: hl7.Message) -> tuple[PatientIdentity, list[ResultGroup]]:
    patient = None
    groups: list[ResultGroup] = []
    placer_from_orc = ""
    last: Observation | None = None
    for segment in message:
        kind = str(segment(0)).strip()
        if kind == "PID":
            if patient is None:
                patient = _patient(segment, message)
        elif kind == "ORC":
            placer_from_orc = part(segment, 2)
        elif kind == "OBR":
            groups.append(_order(segment, placer_from_orc, message))
            last = None
        elif kind == "OBX":
            if not groups:
                raise Rejected(
                    ack.Problem("AE", "OBX before any OBR", ack.SEGMENT_SEQUENCE_ERROR, "OBX")
                )
            last = _observation(segment, message, groups[-1])
            groups[-1].observations.append(last)
        elif kind == "NTE":
            note = message.unescape(whole(segment, 3)).replace("~", "\n")
            if last is not None:
                last.notes.append(note)
            elif groups:
                groups[-1].notes.append(note)
        # MSH, SFT, PV1, ORC's siblings, Z segments and anything unknown: not needed.
    if patient is None:
        raise Rejected(ack.Problem("AE", "PID is missing", ack.SEGMENT_SEQUENCE_ERROR, "PID"))
    if not groups:
        raise Rejected(ack.Problem("AE", "OBR is missing", ack.SEGMENT_SEQUENCE_ERROR, "OBR"))
    if not any(group.observations for group in groups):
        raise Rejected(ack.Problem("AE", "no OBX in the message", "100", "OBX"))
    return patient, groups


def _patient(pid, message) -> PatientIdentity:
    identifiers = []
    # PID-3 (patient identifier list); 2.3 labs may put ours in PID-2 (external id).
    for field_number in (3, 2, 4):
        for rep in range(1, repetitions(pid, field_number) + 1):
            value = message.unescape(part(pid, field_number, rep, 1)).strip()
            if value:
                identifiers.append(
                    Identifier(
                        value=value,
                        type_code=part(pid, field_number, rep, 5).strip().upper(),
                        authority=part(pid, field_number, rep, 4).strip(),
                    )
                )
    return PatientIdentity(
        identifiers=identifiers,
        family_name=message.unescape(part(pid, 5, 1, 1)).strip(),
        given_name=message.unescape(part(pid, 5, 1, 2)).strip(),
        birth_date=day(part(pid, 7), "PID-7 (date of birth)"),
    )


def _order(obr, placer_from_orc: str, message) -> ResultGroup:
    return ResultGroup(
        placer_order_number=(part(obr, 2) or placer_from_orc).strip(),
        filler_order_number=part(obr, 3).strip(),
        code=part(obr, 4, 1, 1).strip(),
        name=message.unescape(part(obr, 4, 1, 2)).strip(),
        code_system=part(obr, 4, 1, 3).strip(),
        observed_at=instant(part(obr, 7), "OBR-7 (observation time)"),
    )


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value and abs(value) < 1e12 else None  # no NaN, no overflow


def _observation(obx, message, group: ResultGroup) -> Observation:
    value_type = part(obx, 2).strip().upper()
    count = repetitions(obx, 5)
    value_text: str | None
    value_numeric = None
    if value_type == "NM":
        value_text = part(obx, 5).strip()
        value_numeric = _number(value_text)
    elif value_type == "SN":
        comparator, first, separator, second = (part(obx, 5, 1, c).strip() for c in range(1, 5))
        value_text = f"{comparator}{first}{separator}{second}"
        if not comparator and not separator:
            value_numeric = _number(first)
    elif value_type in CODED_TYPES:
        code, text = part(obx, 5, 1, 1).strip(), part(obx, 5, 1, 2).strip()
        value_text = message.unescape(text or code)
    else:  # ST, TX, FT and types we do not interpret: the text as sent
        lines = [message.unescape(part_text(obx, rep)) for rep in range(1, count + 1)]
        # python-hl7 unescapes FT's line break (\\.br\\) to CR: lines end in LF here.
        value_text = "\n".join(lines).replace("\r", "\n")
    flag = part(obx, 8).strip().upper() or None
    if flag is not None and flag not in ABNORMAL_FLAGS:
        flag = flag[:5]
    status = RESULT_STATUS.get(part(obx, 11).strip().upper(), "P")
    performing = part(obx, 23, 1, 1).strip() or part(obx, 15, 1, 2).strip() or None
    units = part(obx, 6, 1, 1).strip() or None
    return Observation(
        set_id=part(obx, 1).strip(),
        value_type=value_type[:3] or "ST",
        code=part(obx, 3, 1, 1).strip()[:50],
        name=message.unescape(part(obx, 3, 1, 2)).strip()[:200],
        code_system=part(obx, 3, 1, 3).strip()[:20],
        sub_id=part(obx, 4).strip()[:20],
        value_text=value_text or None,
        value_numeric=value_numeric,
        units=to_ucum(units)[:60] if units else None,
        reference_range=message.unescape(part(obx, 7)).strip()[:60] or None,
        abnormal_flag=flag,
        status=status,
        observed_at=instant(part(obx, 14), "OBX-14 (observation time)") or group.observed_at,
        performing_lab=message.unescape(performing)[:200] if performing else None,
    )


def part_text(segment, rep: int) -> str:
    """OBX-5 repetition ``rep`` whole (a text value's components are its own text)."""
    try:
        value = segment(5)
        if isinstance(value, str):
            return value if rep == 1 else ""
        return str(value(rep))
    except (IndexError, KeyError):
        return ""

"""The HL7 v2 lab connector: settings, ``check()``, sending an order over MLLP and reading
the lab's ACK, the lab's own test codes, and the outbox operations.

The labs domain builds the order message (ORM^O01 2.5.1, ``portal.labs.hl7.orm``) with the
identities and lab codes this connector gives, and hands the text to ``send_order``: the
outbox hands the domain's own operations (``send_lab_order``, ``cancel_lab_order``) to the
deliverer the labs domain registers with ``outbox.register_deliverer``, so this module
imports no domain and any lab connector serves them.

It has no outbox operation of its own: ``deliver`` refuses every operation with a
``PermanentError`` (an order is only ever sent from its row by the labs domain's deliverer,
so no payload in the outbox carries a finished message, the patient's details in clear).

Errors: a connection refused or dropped, an answer that is not an ACK to this message, or
no answer within the time-out raise ``TransientError`` (the outbox retries). An AE or AR is
not an error here: ``send_order`` returns it and the domain decides.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import hl7

from portal.integrations.base import (
    Field,
    LabConnector,
    PermanentError,
    SettingRefused,
    TransientError,
)
from portal.integrations.hl7lab import mllp
from portal.integrations.hl7lab.acks import parse_ack
from portal.integrations.hl7lab.codes import BadCodeMap, parse_code_map

DEFAULT_PORT = 2575
DEFAULT_TIMEOUT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 120
IDENTITY_MAX = 180  # HD in MSH-3..6: namespace id, well within the field's length


@dataclass(frozen=True)
class LabAck:
    """The lab's answer to an order."""

    code: str  # "AA", "AE" or "AR" (MSA-1; CA/CE/CR mapped to AA/AE/AR)
    text: str  # MSA-3 / ERR text, "" when none
    control_id: str  # MSA-2: the control id of the message it answers

    @property
    def accepted(self) -> bool:
        return self.code == "AA"


class Hl7LabConnector(LabConnector):
    name = "hl7lab"
    kind = "lab"
    title = "HL7 v2 lab (MLLP)"
    description = (
        "Lab orders sent as HL7 v2.5.1 ORM^O01 over MLLP (TLS optional); results come back "
        "to the portal's lab listener."
    )
    fields = (
        Field("host", "Lab host", help="The lab's MLLP host name or address"),
        Field("port", "Lab port", type="integer", default=DEFAULT_PORT),
        Field(
            "use_tls",
            "Use TLS",
            type="boolean",
            required=False,
            default=False,
            help="Encrypt the connection (the lab must offer MLLP over TLS)",
        ),
        Field(
            "tls_ca_pem",
            "Lab's CA certificate (PEM)",
            type="lines",
            required=False,
            default="",
            help="Only for a lab whose certificate no public authority signed; blank: the "
            "system's trusted authorities",
        ),
        Field(
            "timeout_seconds",
            "Time-out (seconds)",
            type="integer",
            default=DEFAULT_TIMEOUT_SECONDS,
            help="How long to wait for the lab's ACK before trying again later",
        ),
        Field(
            "sending_application",
            "Sending application (MSH-3)",
            default="PRACTICE_PORTAL",
        ),
        Field("sending_facility", "Sending facility (MSH-4)", help="The clinic's id at the lab"),
        Field("receiving_application", "Receiving application (MSH-5)"),
        Field("receiving_facility", "Receiving facility (MSH-6)"),
        Field(
            "lab_codes",
            "The lab's test codes",
            type="lines",
            required=False,
            default="",
            help="One per line: LOINC=LABCODE^Lab name (e.g. 24331-1=LIPID^Lipid panel); "
            "a test not listed is sent by its LOINC code",
        ),
    )

    def __init__(self, settings: dict[str, Any]):
        super().__init__(settings)
        self._codes: dict[str, tuple[str, str]] | None = None

    # Settings --------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self.settings.get("host") or "").strip()

    @property
    def port(self) -> int:
        return int(self.settings.get("port") or DEFAULT_PORT)

    @property
    def timeout(self) -> float:
        return float(self.settings.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS)

    def validate_settings(self) -> None:
        """Refuse settings that cannot work, naming the field (no network)."""
        if not self.host or any(ch.isspace() for ch in self.host):
            raise SettingRefused("Enter the lab's host name or address.", "host")
        try:
            port = int(self.settings.get("port") or 0)
        except (TypeError, ValueError):
            port = 0
        if not 1 <= port <= 65535:
            raise SettingRefused("A port is a number from 1 to 65535.", "port")
        try:
            timeout = int(self.settings.get("timeout_seconds") or 0)
        except (TypeError, ValueError):
            timeout = 0
        if not 1 <= timeout <= MAX_TIMEOUT_SECONDS:
            raise SettingRefused(
                f"The time-out is from 1 to {MAX_TIMEOUT_SECONDS} seconds.", "timeout_seconds"
            )
        for name in (
            "sending_application",
            "sending_facility",
            "receiving_application",
            "receiving_facility",
        ):
            value = str(self.settings.get(name) or "")
            if not value.strip():
                raise SettingRefused(f"{self.field(name).label} is required.", name)
            if len(value) > IDENTITY_MAX or set(value) & set("|^~\\&\r\n"):
                raise SettingRefused("Up to 180 characters, without | ^ ~ \\ or &.", name)
        try:
            self.codes()
        except BadCodeMap as error:
            raise SettingRefused(str(error), "lab_codes") from error
        if self.settings.get("use_tls"):
            try:
                self.ssl_context()
            except (ssl.SSLError, ValueError) as error:
                raise SettingRefused(
                    "This is not a PEM certificate the connection can trust.", "tls_ca_pem"
                ) from error

    def check(self) -> None:
        """The settings are sound, then the lab's port answers (TCP, and TLS when set);
        nothing is sent."""
        self.validate_settings()
        try:
            mllp.connect_only(
                self.host,
                self.port,
                timeout=self.timeout,
                ssl_context=self.ssl_context(),
            )
        except mllp.Unreachable as error:
            field = "tls_ca_pem" if "TLS" in str(error) else "host"
            raise SettingRefused(f"The lab cannot be reached: {error}.", field) from error

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (None without TLS): the lab's certificate verified against the
        given CA (or the system's), its host name checked."""
        if not self.settings.get("use_tls"):
            return None
        context = ssl.create_default_context()
        pem = str(self.settings.get("tls_ca_pem") or "").strip()
        if pem:
            context.load_verify_locations(cadata=pem)
        return context

    # The interface the labs domain codes against -----------------------------------------

    def identities(self) -> dict[str, str]:
        """MSH-3..6 of our orders, from the settings."""
        return {
            name: str(self.settings.get(name) or "").strip()
            for name in (
                "sending_application",
                "sending_facility",
                "receiving_application",
                "receiving_facility",
            )
        }

    def codes(self) -> dict[str, tuple[str, str]]:
        if self._codes is None:
            self._codes = parse_code_map(self.settings.get("lab_codes"))
        return self._codes

    def lab_code_for(self, loinc: str) -> tuple[str, str] | None:
        """The lab's (code, name) for one of our catalog's tests; None: send the LOINC."""
        return self.codes().get(loinc)

    def send_order(self, message: str) -> LabAck:
        """Send one finished message and return the lab's ACK to it. ``TransientError``
        when there is no connection, it drops, the answer is not an ACK of this message,
        or none comes within the time-out."""
        control_id = _control_id(message)
        try:
            answer = mllp.exchange(
                self.host,
                self.port,
                message,
                timeout=self.timeout,
                ssl_context=self.ssl_context(),
            )
            parsed = parse_ack(answer)
        except mllp.MllpError as error:
            raise TransientError(f"lab {self.host}:{self.port}: {error}") from error
        if parsed.control_id != control_id:
            raise TransientError(f"lab {self.host}:{self.port}: the ACK answers another message")
        return LabAck(code=parsed.code, text=parsed.text, control_id=parsed.control_id)

    # Outbox ------------------------------------------------------------------------------

    def deliver(self, operation: str, payload: dict[str, Any], idempotency_key: str) -> dict:
        # The labs domain's operations reach its deliverer before this; anything else is a
        # message this connector cannot send (failed, replayable from the console).
        raise PermanentError(f"the HL7 lab connector has no operation {operation!r}")


def _control_id(message: str) -> str:
    """MSH-10 of our own message (python-hl7); a message we cannot read is never sent."""
    try:
        return str(hl7.parse(message.replace("\n", "\r")).extract_field("MSH", 1, 10, 1, 1))
    except Exception as error:
        raise PermanentError("the order message is not readable HL7") from error

"""The console's reads and its one use case of its own (the vendors' clinician ids).

Settings, enabling, pausing and replays are the framework's use cases
(``portal.integrations.settings``, ``outbox.replay``), audited there. The message log reads
named columns only: payloads and bodies never leave the database for these pages, and
neither do patients' names (admins have no patient access; ids are shown as plain ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.auth import services as auth_services
from portal.extensions import db
from portal.integrations import registry, settings
from portal.integrations.base import KINDS, Connector, IntegrationError
from portal.integrations.health import Health, health_of
from portal.integrations.models import (
    INBOX_STATUSES,
    OUTBOX_STATUSES,
    ExternalId,
    InboxMessage,
    OutboxMessage,
)
from portal.integrations.outbox import REPLAYABLE
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, end_read, use_case

PAGE_SIZE = 50
CLINICIAN = "clinician"
PRESCRIBER_ROLE = "prescriber"
EXTERNAL_ID_MAX = 128
LOG_STATUSES = {"outbound": OUTBOX_STATUSES, "inbound": INBOX_STATUSES}


def connector_or_404(name: str) -> type[Connector]:
    """The installed connector of this name, or NotFound."""
    cls = registry.connector_class(name)
    if cls is None:
        raise NotFound()
    return cls


# --- the list and a connector's page -------------------------------------------------------


@dataclass(frozen=True)
class ConnectorRow:
    connector: type[Connector]
    health: Health


@dataclass(frozen=True)
class KindGroup:
    kind: str
    label: str
    rows: list[ConnectorRow]


def overview() -> list[KindGroup]:
    """Every available connector with its health, grouped by kind (in ``KINDS`` order)."""
    connectors = registry.available()
    health = health_of([cls.name for cls in connectors])
    groups = []
    for kind, label in KINDS.items():
        rows = [ConnectorRow(cls, health[cls.name]) for cls in connectors if cls.kind == kind]
        if rows:
            groups.append(KindGroup(kind, label, rows))
    return groups


def health_of_connector(cls: type[Connector]) -> Health:
    return health_of([cls.name])[cls.name]


def record_console_viewed(actor, cls: type[Connector] | None = None) -> None:
    """Everything in the console is audited, looking included: the list of connectors
    (``cls`` None) or one connector's set-up."""
    with use_case():
        if cls is None:
            audit.record(actor, "integrations.console_viewed", category="integrations")
        else:
            audit.record(
                actor, "integrations.connector_viewed", detail=cls.name, category="integrations"
            )


def secrets_set(cls: type[Connector]) -> dict[str, bool]:
    """Which secret fields have a stored value: all the console ever says about a secret."""
    setting = settings.setting_of(cls.name)
    stored = (setting.secrets or {}) if setting is not None else {}
    return {field.name: bool(stored.get(field.name)) for field in cls.fields if field.secret}


def stored_values(cls: type[Connector]) -> dict:
    """The plain (not secret) settings as stored, else each field's default."""
    setting = settings.setting_of(cls.name)
    values = (setting.values or {}) if setting is not None else {}
    return {
        field.name: values.get(field.name, field.default)
        for field in cls.fields
        if not field.secret
    }


# --- the message log -----------------------------------------------------------------------


@dataclass(frozen=True)
class LogRow:
    """One message as the log shows it: no payload, no body, no names."""

    id: int
    at: datetime
    what: str  # the operation, or the event type
    status: str
    attempts: int
    patient_id: int | None
    prescription_id: int | None
    order_id: int | None
    error: str | None

    @property
    def replayable(self) -> bool:
        return self.status in REPLAYABLE


@dataclass(frozen=True)
class LogPage:
    rows: list[LogRow]
    older_than: int | None  # the "older" link's cursor, None on the last page


def message_log(actor, connector: str, direction: str, status: str | None, before: int | None):
    """A page of ``PAGE_SIZE`` messages, newest first, older than the message ``before``
    (keyset paging on the id: each page costs the same however deep it is). Audited: the log
    holds no patient data, but which messages about which ids an admin looked at is kept."""
    with use_case():
        audit.record(
            actor,
            "integrations.message_log_viewed",
            detail=f"{connector} {direction}" + (f" {status}" if status else ""),
            category="integrations",
        )
    if direction == "inbound":
        columns = (
            InboxMessage.id,
            InboxMessage.received_at,
            InboxMessage.event_type,
            InboxMessage.status,
            InboxMessage.attempts,
            InboxMessage.patient_id,
            InboxMessage.reason,
        )
        model = InboxMessage
    else:
        columns = (
            OutboxMessage.id,
            OutboxMessage.created_at,
            OutboxMessage.operation,
            OutboxMessage.status,
            OutboxMessage.attempts,
            OutboxMessage.patient_id,
            OutboxMessage.prescription_id,
            OutboxMessage.order_id,
            OutboxMessage.last_error,
        )
        model = OutboxMessage
    query = select(*columns).where(model.connector == connector)
    if status:
        query = query.where(model.status == status)
    if before is not None:
        query = query.where(model.id < before)
    found = db.session.execute(query.order_by(model.id.desc()).limit(PAGE_SIZE + 1)).all()
    rows = []
    for row in found[:PAGE_SIZE]:
        if direction == "inbound":
            id_, at, what, row_status, attempts, patient_id, error = row
            rows.append(
                LogRow(id_, at, what or "", row_status, attempts, patient_id, None, None, error)
            )
        else:
            rows.append(LogRow(*row))
    older = rows[-1].id if len(found) > PAGE_SIZE else None
    return LogPage(rows, older)


def outbound_message_or_404(connector: str, message_id: int) -> None:
    """NotFound unless the message exists and is this connector's."""
    found = db.session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.id == message_id, OutboxMessage.connector == connector
        )
    )
    if found is None:
        raise NotFound()


# --- vendors' clinician ids ----------------------------------------------------------------


@dataclass(frozen=True)
class Prescriber:
    user_id: int
    full_name: str
    username: str
    is_enabled: bool


@dataclass(frozen=True)
class ClinicianRow:
    prescriber: Prescriber
    external_id: str | None
    registration: str | None  # what the vendor says, when the connector can ask


def prescribers() -> list[Prescriber]:
    """Staff with the prescriber role, by name (plain data)."""
    return [
        Prescriber(user.id, user.full_name, user.username, user.is_enabled)
        for user in auth_services.users_with_role(PRESCRIBER_ROLE)
    ]


def clinician_ids(connector: str, user_ids: list[int]) -> dict[int, str]:
    """user id -> the vendor's clinician id, for those mapped."""
    if not user_ids:
        return {}
    rows = db.session.execute(
        select(ExternalId.local_id, ExternalId.external_id).where(
            ExternalId.connector == connector,
            ExternalId.kind == CLINICIAN,
            ExternalId.local_id.in_(user_ids),
        )
    )
    return dict(rows.all())


def can_read_registration(cls: type[Connector]) -> bool:
    return callable(getattr(cls, "clinician_registration_status", None))


def clinician_rows(cls: type[Connector]) -> list[ClinicianRow]:
    """Each prescriber with the vendor's id for them and, when the connector can tell, their
    registration with the vendor (read live; the page's reads are ended first, so no
    transaction waits on the vendor)."""
    staff = prescribers()
    mapped = clinician_ids(cls.name, [person.user_id for person in staff])
    connector = settings.enabled_connector(cls.name) if can_read_registration(cls) else None
    end_read()
    rows = []
    for person in staff:
        external_id = mapped.get(person.user_id)
        rows.append(ClinicianRow(person, external_id, _registration(cls, connector, external_id)))
    return rows


def _registration(cls, connector, external_id: str | None) -> str | None:
    if not can_read_registration(cls):
        return None
    if external_id is None:
        return "no id yet"
    if connector is None:
        return "unavailable: the connector is not enabled"
    try:
        return str(connector.clinician_registration_status(external_id))
    except IntegrationError as error:
        return f"unavailable: {error}"


def clinician_field(user_id: int) -> str:
    """The form field (and the refusal's field) of a prescriber's vendor id."""
    return f"clinician_{user_id}"


def map_clinicians(actor, connector: str, typed: dict[int, str]) -> int:
    """Save the vendor's clinician ids of prescribers (blank: no id); one audited event per
    id set, changed or removed. Returns how many changed."""
    if registry.connector_class(connector) is None:
        raise Refused("No such connector is installed.")
    wanted = {user_id: (value or "").strip() for user_id, value in typed.items()}
    seen: dict[str, int] = {}
    for user_id, external_id in wanted.items():
        if len(external_id) > EXTERNAL_ID_MAX:
            raise Refused(f"At most {EXTERNAL_ID_MAX} characters.", clinician_field(user_id))
        if external_id and external_id in seen:
            raise Refused("Two prescribers cannot share one id.", clinician_field(user_id))
        if external_id:
            seen[external_id] = user_id
    conflict = Conflict("Someone else changed these ids meanwhile; check them and save again.")
    with use_case(conflict=conflict):
        allowed = {person.user_id for person in prescribers()}
        for user_id in wanted:
            if user_id not in allowed:
                raise Refused("Only prescribers have a clinician id.", clinician_field(user_id))
        existing = {
            row.local_id: row
            for row in db.session.scalars(
                select(ExternalId).where(
                    ExternalId.connector == connector,
                    ExternalId.kind == CLINICIAN,
                    ExternalId.local_id.in_(list(wanted)),
                )
            )
        }
        _refuse_ids_of_others(connector, seen, set(wanted))
        changes = {
            user_id: external_id
            for user_id, external_id in wanted.items()
            if (existing[user_id].external_id if user_id in existing else "") != external_id
        }
        # Old rows go first, so ids moving between two prescribers never collide.
        for user_id in changes:
            if user_id in existing:
                db.session.delete(existing[user_id])
        db.session.flush()
        now = utcnow()
        for user_id, external_id in changes.items():
            if external_id:
                db.session.add(
                    ExternalId(
                        connector=connector,
                        kind=CLINICIAN,
                        local_id=user_id,
                        external_id=external_id,
                        created_at=existing[user_id].created_at if user_id in existing else now,
                        updated_at=now,
                    )
                )
            audit.record(
                actor,
                "integrations.clinician_mapped"
                if external_id
                else "integrations.clinician_unmapped",
                object_type="users",
                object_id=user_id,
                detail=f"{connector}; user {user_id}",
                category="integrations",
            )
        db.session.flush()
        return len(changes)


def _refuse_ids_of_others(connector: str, typed: dict[str, int], submitted: set[int]) -> None:
    """A vendor id kept for a prescriber left out of this form is refused beside the field
    that typed it (ids of prescribers on the form may move between them)."""
    if not typed:
        return
    taken = db.session.execute(
        select(ExternalId.external_id, ExternalId.local_id).where(
            ExternalId.connector == connector,
            ExternalId.kind == CLINICIAN,
            ExternalId.external_id.in_(list(typed)),
        )
    )
    for external_id, local_id in taken:
        if local_id != typed[external_id] and local_id not in submitted:
            raise Refused(
                "This id is already another clinician's.", clinician_field(typed[external_id])
            )

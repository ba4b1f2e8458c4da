"""Connector settings: saving them (secrets encrypted), enabling after a successful
``check()``, disabling, pausing delivery; and the connector instances the worker and the
domains use.

A secret is written, never read back to a page: the console shows whether it is set, and a
blank secret field on the form keeps the stored one. Secrets are never in an audit detail
(events name the connector and the fields changed, not their values) or in a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select

from portal.audit import services as audit
from portal.clinic.models import Clinic
from portal.clinic.services import current_clinic
from portal.crypto import decrypt_text, encrypt_text
from portal.extensions import db
from portal.integrations import registry
from portal.integrations.base import (
    Connector,
    EPrescribingConnector,
    Field,
    IntegrationError,
    SettingRefused,
)
from portal.integrations.epcs_credentials import factors_for
from portal.integrations.models import ConnectorSetting
from portal.timeutil import utcnow
from portal.transaction import Refused, end_read, use_case


@dataclass(frozen=True)
class Submitted:
    """What the console's form sent: plain values, and the secrets typed anew (a secret
    left blank keeps the stored one)."""

    values: dict[str, Any]
    secrets: dict[str, str]


# The installation's clinic (the first), inside the query: a webhook's request costs one
# round trip for its connector's settings, not two.
_THE_CLINIC = select(Clinic.id).order_by(Clinic.id).limit(1).scalar_subquery()


def setting_of(connector: str) -> ConnectorSetting | None:
    """The clinic's stored settings of a connector (None: never configured)."""
    return db.session.scalars(
        select(ConnectorSetting).where(
            ConnectorSetting.clinic_id == _THE_CLINIC, ConnectorSetting.connector == connector
        )
    ).first()


def _decrypted(setting: ConnectorSetting) -> dict[str, Any]:
    values = dict(setting.values or {})
    for name, token in (setting.secrets or {}).items():
        values[name] = decrypt_text(token)
    return values


def _coerce(field: Field, raw: Any) -> Any:
    if raw is None or raw == "":
        return field.default
    if field.type == "integer":
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise Refused("Enter a whole number.", field.name) from None
    if field.type == "boolean":
        return raw in (True, "y", "on", "true", "1")
    if field.type == "url" and not str(raw).startswith(("https://", "http://")):
        raise Refused("Enter an address starting with https://.", field.name)
    return str(raw).strip()


def _merged(cls: type[Connector], submitted: Submitted, stored: dict[str, Any]) -> dict:
    """The settings a save would leave: typed values, new secrets, kept secrets."""
    merged: dict[str, Any] = {}
    for field in cls.fields:
        if field.secret:
            typed = submitted.secrets.get(field.name) or ""
            merged[field.name] = typed or stored.get(field.name)
        else:
            merged[field.name] = _coerce(field, submitted.values.get(field.name))
        if field.required and merged[field.name] in (None, ""):
            raise Refused(f"{field.label} is required.", field.name)
    return merged


def connector_class_or_refuse(name: str) -> type[Connector]:
    cls = registry.connector_class(name)
    if cls is None:
        raise Refused("No such connector is installed.")
    return cls


def save_and_enable(actor, name: str, submitted: Submitted) -> ConnectorSetting:
    """Save the settings and enable the connector, after ``check()`` accepts them.

    ``check()`` talks to the vendor, so it runs before the use case (no transaction is held
    open across the network); a refusal names the field it is about and nothing is saved.
    """
    cls = connector_class_or_refuse(name)
    stored = setting_of(name)
    merged = _merged(cls, submitted, _decrypted(stored) if stored else {})
    end_read()  # no transaction stays open while the vendor answers
    try:
        cls(merged).check()
    except SettingRefused as refused:
        raise Refused(str(refused), refused.field) from refused
    except IntegrationError as error:
        raise Refused(f"The connection could not be checked: {error}") from error
    with use_case():
        clinic = current_clinic()
        setting = setting_of(name) or ConnectorSetting(clinic_id=clinic.id, connector=name)
        changed = _store(cls, setting, merged)
        now = utcnow()
        if not setting.enabled:
            setting.enabled_at = now
        setting.enabled = True
        setting.updated_at = now
        db.session.add(setting)
        db.session.flush()
        audit.record(
            actor,
            "integrations.connector_enabled",
            obj=setting,
            detail=f"{name}; changed: {', '.join(changed) or 'nothing'}",
            category="integrations",
        )
        return setting


def _store(cls: type[Connector], setting: ConnectorSetting, merged: dict) -> list[str]:
    """Write the merged settings (secrets encrypted); returns the names of those changed."""
    old = _decrypted(setting) if setting.id else {}
    values, secrets = {}, dict(setting.secrets or {})
    for field in cls.fields:
        value = merged[field.name]
        if field.secret:
            if value and value != old.get(field.name):
                secrets[field.name] = encrypt_text(value)
        else:
            values[field.name] = value
    setting.values = values
    setting.secrets = secrets
    return [f.name for f in cls.fields if merged[f.name] != old.get(f.name)]


def set_enabled(actor, name: str, enabled: bool) -> ConnectorSetting:
    """Disable a connector (its messages wait), or enable it again with the stored
    settings (checked first, as when saving)."""
    connector_class_or_refuse(name)
    if enabled:
        stored = setting_of(name)
        if stored is None:
            raise Refused("Configure the connector first.")
        return save_and_enable(actor, name, Submitted(values=dict(stored.values), secrets={}))
    return _switch(actor, name, "integrations.connector_disabled", enabled=False)


def set_paused(actor, name: str, paused: bool) -> ConnectorSetting:
    """Pause delivery (messages keep queuing) or resume it."""
    connector_class_or_refuse(name)
    action = "integrations.delivery_paused" if paused else "integrations.delivery_resumed"
    return _switch(actor, name, action, paused=paused)


def _switch(actor, name: str, action: str, **flags: bool) -> ConnectorSetting:
    """Flip a configured connector's flags, audited, in one use case."""
    with use_case():
        setting = setting_of(name)
        if setting is None:
            raise Refused("The connector is not configured.")
        for flag, value in flags.items():
            setattr(setting, flag, value)
        setting.updated_at = utcnow()
        audit.record(actor, action, obj=setting, detail=name, category="integrations")
        return setting


def _enabled_settings(*, include_paused: bool) -> list[ConnectorSetting]:
    query = select(ConnectorSetting).where(
        ConnectorSetting.clinic_id == _THE_CLINIC, ConnectorSetting.enabled.is_(True)
    )
    if not include_paused:
        query = query.where(ConnectorSetting.paused.is_(False))
    return list(db.session.scalars(query))


def enabled_names(*, include_paused: bool = True) -> list[str]:
    """The enabled connectors that are installed, by name, without decrypting anything."""
    rows = _enabled_settings(include_paused=include_paused)
    return sorted(row.connector for row in rows if registry.connector_class(row.connector))


def active_connectors(*, include_paused: bool = False) -> dict[str, Connector]:
    """The connectors enabled (and not paused, unless ``include_paused``), made from their
    settings: what the worker delivers for (and processes pushed events of)."""
    active = {}
    for row in _enabled_settings(include_paused=include_paused):
        cls = registry.connector_class(row.connector)
        if cls is not None:  # a plugin uninstalled since: its messages wait
            active[row.connector] = _made(cls, row)
    return active


def _made(cls: type[Connector], row: ConnectorSetting) -> Connector:
    """The connector from its settings; an e-prescribing one also gets the way to its
    prescribers' EPCS credentials (read and decrypted only when a controlled one is sent)."""
    connector = cls(_decrypted(row))
    if isinstance(connector, EPrescribingConnector):
        connector.epcs_factors = partial(factors_for, row.connector)
    return connector


def enabled_connector(name: str) -> Connector | None:
    """An enabled connector, for a synchronous read a person waits for (a launch URL, a
    pharmacy search); None when it is not enabled."""
    setting = setting_of(name)
    cls = registry.connector_class(name)
    if setting is None or not setting.enabled or cls is None:
        return None
    return _made(cls, setting)

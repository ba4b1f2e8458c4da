"""The connectors this installation knows: the built-in ones, and those other installed
packages add through the entry-point group ``portal.connectors``.

A plugin distribution declares, in its pyproject.toml::

    [project.entry-points."portal.connectors"]
    acme_lab = "acme_portal_lab:AcmeLabConnector"

and is found once installed in the portal's environment (read when the app starts). A plugin
that fails to load is left out with a warning naming it, not the portal with it.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from portal.integrations.base import KINDS, Connector

ENTRY_POINT_GROUP = "portal.connectors"

log = logging.getLogger(__name__)

_connectors: dict[str, type[Connector]] = {}


def register(connector: type[Connector]) -> type[Connector]:
    """Add a connector class (usable as a class decorator). Its name must be new."""
    if not (isinstance(connector, type) and issubclass(connector, Connector)):
        raise TypeError(f"{connector!r} is not a Connector subclass")
    if connector.kind not in KINDS:
        raise ValueError(f"connector {connector.name}: unknown kind {connector.kind!r}")
    existing = _connectors.get(connector.name)
    if existing is not None and existing is not connector:
        raise ValueError(f"two connectors are named {connector.name!r}")
    _connectors[connector.name] = connector
    return connector


def unregister(name: str) -> None:
    """Forget a connector (tests that register their own)."""
    _connectors.pop(name, None)


def load_plugins() -> list[str]:
    """Register the connectors of installed plugin distributions; returns their names."""
    loaded = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            connector = entry_point.load()
            register(connector)
        except Exception as error:  # a broken plugin must not stop the portal
            log.warning(
                "connector plugin %s not loaded: %s: %s",
                entry_point.name,
                type(error).__name__,
                error,
            )
            continue
        loaded.append(connector.name)
    return loaded


def connector_class(name: str) -> type[Connector] | None:
    return _connectors.get(name)


def available() -> list[type[Connector]]:
    """Every known connector, by kind then title."""
    return sorted(_connectors.values(), key=lambda c: (c.kind, c.title.lower()))

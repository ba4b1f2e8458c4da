"""The connectors that ship with the portal, registered when this module is imported (the
app factory imports it before loading plugins, so a plugin cannot take a built-in's name)."""

from __future__ import annotations

from portal.integrations import registry
from portal.integrations.dosespot.connector import DoseSpotConnector
from portal.integrations.hl7lab.connector import Hl7LabConnector

BUILTIN = (DoseSpotConnector, Hl7LabConnector)

for _connector in BUILTIN:
    registry.register(_connector)

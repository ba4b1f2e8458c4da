"""The FHIR R4 (4.0.1) API under ``/fhir``: read and search of the chart's resources, a
patient's ``$everything``, bulk export and bundle import, for API clients with tokens."""

from flask import Blueprint

bp = Blueprint("fhir", __name__, url_prefix="/fhir")

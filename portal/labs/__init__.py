"""Labs: orders from the LOINC catalog, HL7 v2 results received and matched to patients, and
their review. ``bp`` is the domain's blueprint; importing the package runs no views."""

from flask import Blueprint

bp = Blueprint("labs", __name__, url_prefix="/labs")

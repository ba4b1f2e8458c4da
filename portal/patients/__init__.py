"""Patient registry: registration, demographics, search, the patient banner."""

from flask import Blueprint

bp = Blueprint("patients", __name__, url_prefix="/patients")

"""Connectors to outside systems (e-prescribing, labs): the framework, each clinic's settings,
the outbox and inbox, and the public webhook endpoint (``hooks``)."""

from flask import Blueprint

bp = Blueprint("integrations", __name__, url_prefix="/integrations")

"""The public webhook endpoint: ``POST /integrations/<connector>/webhook``.

Verified first (the connector checks the shared secret, and a signature and its time window
where the sender offers them), then stored with its event id, then answered 2xx; the worker
processes the stored copy. Answers are JSON for the sender's machine:

- 200 ``{"status": "accepted"}`` (or ``"duplicate"``: already stored, not processed twice);
- 400 ``{"error": "malformed", "reason": ...}``: verified but unreadable, stored as rejected;
- 401 ``{"error": "unauthorized"}``: forged, stale or badly signed; nothing stored, counted;
- 404: no such connector enabled; 413: larger than ``WEBHOOK_MAX_BYTES``, counted.

No sign-in and no CSRF token: the sender is a machine that proves itself with the secret.
No patient data reaches a log line.
"""

from __future__ import annotations

from flask import current_app, jsonify, request

from portal.auth.permissions import public
from portal.extensions import csrf
from portal.integrations import bp, inbox
from portal.integrations.base import BadWebhook
from portal.integrations.models import InboxMessage
from portal.integrations.settings import enabled_connector
from portal.timeutil import utcnow

EVENT_ID_MAX_CHARS = InboxMessage.__table__.c.event_id.type.length


@bp.post("/<connector_name>/webhook")
@public
@csrf.exempt
def webhook(connector_name: str):
    connector = enabled_connector(connector_name)
    if connector is None:
        return jsonify(error="not_found"), 404
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    if (request.content_length or 0) > limit:
        inbox.count_refusal(connector_name, "too large")
        return jsonify(error="too_large", limit=limit), 413
    raw = request.get_data(cache=False)
    if len(raw) > limit:  # no Content-Length (chunked): measured as read
        inbox.count_refusal(connector_name, "too large")
        return jsonify(error="too_large", limit=limit), 413
    try:
        event_id = connector.verify_webhook(request.headers, raw, utcnow())
        if len(event_id) > EVENT_ID_MAX_CHARS:  # whatever the connector: the column's bound
            raise BadWebhook("event id too long")
    except BadWebhook as refused:
        inbox.count_refusal(connector_name, refused.reason[:64])
        return jsonify(error="unauthorized"), 401
    text = raw.decode("utf-8", errors="replace")
    try:
        event_type, _data = connector.parse_webhook(text)
    except BadWebhook as malformed:
        inbox.reject(connector_name, event_id, text, malformed.reason)
        return jsonify(error="malformed", reason=malformed.reason), 400
    accepted = inbox.accept(connector_name, event_id, event_type, text)
    return jsonify(status="duplicate" if accepted.duplicate else "accepted"), 200

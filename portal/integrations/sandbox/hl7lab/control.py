"""[sandbox] The control API (HTTP, loopback callers only; no other auth), for tests and
developers: the fault switches, what was ordered and reported, a message sent on demand.

    GET  /_sandbox/faults            the switches (state.Faults)
    POST /_sandbox/faults            change some: {"ack": "AE", "ack_text": "...", "times": 1}
    GET  /_sandbox/orders            every order message received and what it was answered
                                     ("arrived": messages read, answered or not yet)
    GET  /_sandbox/results           every result message sent and the portal's answer
    POST /_sandbox/send              {"message": "MSH|..."} to the portal's listener, once;
                                     -> {"ack_code", "ack_text"} (502 with "error": no ACK)
    POST /_sandbox/reset             switches to normal, records cleared, pending results dropped
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, current_app, jsonify, request

LOOPBACK = ("127.0.0.1", "::1")

bp = Blueprint("lab_sandbox_control", __name__, url_prefix="/_sandbox")


def sandbox():
    return current_app.extensions["lab_sandbox"]


@bp.before_request
def loopback_only():
    if request.remote_addr not in LOOPBACK:
        abort(403)


def _body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


@bp.get("/faults")
def faults():
    return jsonify(sandbox().state.faults.as_dict())


@bp.route("/faults", methods=["POST", "PUT", "PATCH"])
def set_faults():
    """Change the named switches; an unknown name or value is refused (400), nothing changed."""
    state = sandbox().state
    with state.lock:
        try:
            state.faults.update(_body())
        except (TypeError, ValueError) as error:
            return jsonify(error=str(error)), 400
        return jsonify(state.faults.as_dict())


@bp.get("/orders")
def orders():
    state = sandbox().state
    return jsonify(orders=state.snapshot("orders"), arrived=state.arrived)


@bp.get("/results")
def results():
    return jsonify(results=sandbox().state.snapshot("results"))


@bp.post("/send")
def send():
    """Send the given message (text; LF or CRLF between segments become CR unless "raw" is
    true) to the portal's listener once and answer with its ACK."""
    body = _body()
    message = body.get("message")
    if not isinstance(message, str) or not message:
        return jsonify(error='give the message as {"message": "MSH|..."}'), 400
    if not body.get("raw"):
        message = message.replace("\r\n", "\r").replace("\n", "\r")
    lab = sandbox()
    outcome = lab.call(lab.deliver(message))
    if outcome.ack_code is None:
        return jsonify(error=outcome.error), 502
    return jsonify(ack_code=outcome.ack_code, ack_text=outcome.ack_text)


@bp.post("/reset")
def reset():
    sandbox().reset()
    return jsonify(ok=True)


def create_control_app(lab) -> Flask:
    app = Flask(__name__)
    app.extensions["lab_sandbox"] = lab
    app.register_blueprint(bp)

    @app.get("/")
    def about():
        return jsonify(
            sandbox="hl7lab",
            mllp_port=lab.mllp_port,
            results_to=f"{lab.config['results_host']}:{lab.config['results_port']}",
        )

    return app

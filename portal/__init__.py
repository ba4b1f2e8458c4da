"""Practice Portal: a server-rendered practice portal (EMR) for clinics."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from flask import Flask

from portal.config import (
    Defaults,
    apply_environment,
    ensure_instance_config,
    instance_path_from_environment,
)
from portal.extensions import csrf, db, htmx, login_manager, migrate
from portal.private_files import create_private_database, warn_about_wide_permissions
from portal.transaction import configure_sqlite, guard_writes_in_requests

MIGRATIONS_DIRECTORY = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application: config -> extensions -> blueprints -> hooks -> cli."""
    test_config = dict(test_config or {})
    instance_path = test_config.pop("INSTANCE_PATH", None) or instance_path_from_environment()
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    register_config(app, test_config)
    register_logging(app)
    check_private_files(app)
    register_extensions(app)
    register_blueprints(app)
    register_hooks(app)
    register_cli(app)
    return app


def register_config(app: Flask, test_config: dict) -> None:
    app.config.from_object(Defaults)
    config_file = ensure_instance_config(app.instance_path)
    app.config.from_pyfile(config_file)
    apply_environment(app.config)
    app.config.update(test_config)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        database = Path(app.instance_path) / "portal.sqlite"
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{database}"
    app.config["SQLALCHEMY_DATABASE_URI"] = _normalise_database_url(
        app.config["SQLALCHEMY_DATABASE_URI"]
    )
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Private from the start: SQLite gives the -wal and -shm files the database's mode.
        create_private_database(app.config["SQLALCHEMY_DATABASE_URI"])
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    # The session cookie is ours (auth/sessions.py); Flask's settings only matter for CSRF.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = bool(app.config["HTTPS"])


def _normalise_database_url(url: str) -> str:
    """Accept postgres:// and postgresql:// and use the psycopg 3 driver for both."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def register_logging(app: Flask) -> None:
    level = app.config.get("LOG_LEVEL", "INFO")
    app.logger.setLevel(level)
    # The request log names methods and paths only; paths carry ids, never patient data.
    logging.getLogger("werkzeug").setLevel(logging.WARNING if app.testing else logging.INFO)
    # At DEBUG, SQLAlchemy logs bound parameters and result rows: patient data. Keep the SQL
    # text (useful when debugging) but never its values, whatever level someone turns on.
    engine_logger = logging.getLogger("sqlalchemy.engine.Engine")
    if not any(isinstance(f, _HideSqlValues) for f in engine_logger.filters):
        engine_logger.addFilter(_HideSqlValues())


class _HideSqlValues(logging.Filter):
    """Drops the arguments (parameters, rows) of SQLAlchemy's engine log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = f"{record.msg} [values hidden]"
            record.args = None
        return True


def check_private_files(app: Flask) -> None:
    """Warn (in the log) about any key, database or other instance file that other local
    users could read: portal/private_files.py."""
    checkpoints = app.config.get("AUDIT_CHECKPOINT_PATH")
    warn_about_wide_permissions(
        app.logger,
        app.instance_path,
        app.config["SQLALCHEMY_DATABASE_URI"],
        [Path(checkpoints)] if checkpoints else [],
    )


def register_extensions(app: Flask) -> None:
    # Every table must be known to the metadata before migrations compare against it.
    import portal.audit.models
    import portal.auth.models
    import portal.charting.models
    import portal.clinic.models
    import portal.fhir.bulk.models
    import portal.fhir.models
    import portal.integrations.models
    import portal.labs.models
    import portal.patients.models
    import portal.prescriptions.models
    import portal.scheduling.models
    from portal.auth.sessions import DatabaseSessionInterface

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIRECTORY, render_as_batch=True)
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    # The FHIR API (bearer tokens) neither reads nor sets the session cookie.
    app.session_interface = DatabaseSessionInterface(sessionless_prefixes=("/fhir",))
    # Connectors other installed packages add (entry points), beside the built-in ones; and
    # the domains that handle what connectors of a kind push to us.
    import portal.integrations.builtin  # noqa: F401  (registers DoseSpot before any plugin)
    from portal.integrations import inbox, outbox
    from portal.integrations.registry import load_plugins
    from portal.labs.ordering import delivery as lab_delivery
    from portal.prescriptions.compose.services import (
        ADD_PHARMACY_OPERATION,
        pharmacy_sync_withheld,
        record_pharmacy_synced,
    )
    from portal.prescriptions.inbox.answers import (
        ANSWER_OPERATIONS,
        APPROVE_OPERATIONS,
        record_answer_outcome,
    )
    from portal.prescriptions.inbox.pull import handle_event
    from portal.prescriptions.printing.services import send_withheld
    from portal.prescriptions.services import SEND_OPERATION
    from portal.prescriptions.signing.services import record_send_outcome

    load_plugins()
    # Pharmacies' requests are pulled on the vendor's counts event; every other event is
    # prescriptions' write-back (the Rx inbox's handler hands them on).
    inbox.register_handler("eprescribing", handle_event)
    # A prescription's send reports its outcome back (sent, or error with the reason).
    outbox.register_outcome_handler(SEND_OPERATION, record_send_outcome)
    # So does the answer to a pharmacy's request (the Rx inbox).
    for operation in ANSWER_OPERATIONS:
        outbox.register_outcome_handler(operation, record_answer_outcome)
    # A send of a prescription printed meanwhile never goes out (issue 11); nor does the
    # approval that stands for one.
    for operation in (SEND_OPERATION, *APPROVE_OPERATIONS.values()):
        outbox.register_withholder(operation, send_withheld)
    # Lab orders: built from the order at delivery, sent by the lab connector, the ACK applied.
    for operation in lab_delivery.OPERATIONS:
        outbox.register_deliverer(operation, lab_delivery.deliver_order)
        outbox.register_outcome_handler(operation, lab_delivery.record_outcome)
    outbox.register_withholder(lab_delivery.SEND_OPERATION, lab_delivery.send_withheld)
    # A preferred pharmacy's sync to the vendor reports back (issue 11); one the patient no
    # longer has (removed while its sync was in flight) never goes out.
    outbox.register_outcome_handler(ADD_PHARMACY_OPERATION, record_pharmacy_synced)
    outbox.register_withholder(ADD_PHARMACY_OPERATION, pharmacy_sync_withheld)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(db.engine)
        if app.config.get("GUARD_WRITES", app.testing):
            guard_writes_in_requests(db.engine)


# The modules whose import adds routes to their domain's blueprint (``bp`` in each domain
# package's __init__, which imports nothing else, so no domain imports another's views).
ROUTE_MODULES = (
    "portal.main.views",
    "portal.auth.views",
    "portal.patients.views",
    "portal.scheduling.calendar.views",
    "portal.scheduling.booking.views",
    "portal.scheduling.booking.patient_page",  # no routes: registers the patient page's part
    "portal.scheduling.availability.views",
    "portal.scheduling.flow.views",
    "portal.scheduling.waitlist.views",
    "portal.scheduling.feeds.views",
    "portal.scheduling.setup.views",
    "portal.charting.encounters.views",
    "portal.charting.notes.views",
    "portal.charting.vitals.views",
    "portal.charting.immunizations.views",
    "portal.charting.lists.views",
    "portal.charting.summary.views",
    "portal.admin.views",
    "portal.admin.audit_trail.views",
    "portal.admin.integrations.views",
    "portal.integrations.hooks",
    "portal.prescriptions.views",
    "portal.prescriptions.compose.views",
    "portal.prescriptions.signing.views",
    "portal.prescriptions.inbox.views",
    "portal.prescriptions.printing.views",
    "portal.prescriptions.cancelling.views",
    "portal.labs.results.views",
    "portal.labs.ordering.views",
    "portal.fhir.views",
    "portal.fhir.bulk.views",
    "portal.fhir.token_endpoint",
    "portal.admin.api_clients.views",
)


def register_blueprints(app: Flask) -> None:
    from portal import (
        admin,
        auth,
        charting,
        fhir,
        integrations,
        labs,
        main,
        patients,
        prescriptions,
        scheduling,
    )
    from portal.admin import audit_trail
    from portal.ids import IdConverter

    # Before any route is added: every <int:...> is a row id, bounded to the id columns'
    # range, so an id beyond it is a 404 and never reaches a query (portal/ids.py).
    app.url_map.converters["int"] = IdConverter

    for module in ROUTE_MODULES:
        importlib.import_module(module)
    for domain in (
        main,
        auth,
        patients,
        scheduling,
        charting,
        prescriptions,
        labs,
        admin,
        audit_trail,
        integrations,
        fhir,
    ):
        app.register_blueprint(domain.bp)
    # The FHIR API authenticates each request by its bearer token, never a cookie: a
    # cross-site form cannot borrow it, so there is no CSRF to defend against.
    csrf.exempt(fhir.bp)


def register_hooks(app: Flask) -> None:
    from portal import web
    from portal.auth import permissions
    from portal.auth import views as auth_views
    from portal.clinic import display
    from portal.fhir import errors as fhir_errors

    app.before_request(permissions.enforce_declared_permission)
    app.after_request(web.add_security_headers)
    app.context_processor(web.template_globals)
    app.context_processor(permissions.template_globals)
    app.context_processor(display.template_globals)
    web.register_error_pages(app)
    fhir_errors.register(app)
    auth_views.register_login_manager(app)
    app.jinja_env.filters.update(display.template_filters())


def register_cli(app: Flask) -> None:
    from portal import cli

    cli.register(app)

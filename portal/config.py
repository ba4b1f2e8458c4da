"""Configuration: defaults in code, then ``instance/config.py``, then ``PORTAL_*`` variables.

Secrets never live in the repository. On first start the factory writes ``instance/config.py``
with a random ``SECRET_KEY``, ``DATA_ENCRYPTION_KEY`` and ``AUDIT_KEY`` (file mode 0600); an
existing file without an ``AUDIT_KEY`` gets one appended (unless the environment gives one).
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

from portal.private_files import make_private_folder


class Defaults:
    """Values used when neither the instance file nor the environment says otherwise."""

    # Filled in by the factory: sqlite:///<instance>/portal.sqlite
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    SECRET_KEY: str | None = None
    DATA_ENCRYPTION_KEY: str | None = None
    # Keys the audit trail's MACs, chain and checkpoints (portal/audit/integrity.py). Lives
    # outside the database, like the data key: whoever can write the database but has not
    # got this key cannot alter the trail unseen.
    AUDIT_KEY: str | None = None
    # How long a process reuses the clinic's name and time zone (every page shows them).
    CLINIC_DISPLAY_SECONDS = 10
    # Where checkpoints of the audit chain are appended (default: the instance folder's
    # audit-checkpoints.jsonl), how often the worker writes one, and how long an event may
    # wait for the sealer before `audit verify` calls it a problem.
    AUDIT_CHECKPOINT_PATH: str | None = None
    AUDIT_CHECKPOINT_MINUTES = 5
    AUDIT_SEAL_GRACE_MINUTES = 5
    # Tries of an outbox message before it is dead (kept, shown in the console, replayable).
    OUTBOX_MAX_ATTEMPTS = 8
    # How long a worker holds a message it is delivering; one that dies lets it go then.
    # Longer than the slowest vendor call (connectors time out well within it).
    OUTBOX_LEASE_SECONDS = 120
    # The largest webhook body stored; vendors' events are a few KB.
    WEBHOOK_MAX_BYTES = 256 * 1024
    # The HL7 lab results listener (MLLP): where it listens, the largest message it takes
    # (a lab's PDF report in an OBX can be megabytes), and the folder a lab drops files in
    # (the worker watches it; unset: no folder).
    LAB_LISTENER_HOST = "127.0.0.1"
    LAB_LISTENER_PORT = 2575
    LAB_MESSAGE_MAX_BYTES = 16 * 1024 * 1024
    LAB_DROP_FOLDER: str | None = None

    # Sessions live in the database; these bound how long one lasts.
    SESSION_IDLE_MINUTES = 15
    SESSION_ABSOLUTE_HOURS = 12
    HTTPS = False

    # Sign-in protection.
    LOGIN_FREE_FAILURES = 5  # failures allowed before the back-off starts
    LOGIN_BACKOFF_BASE_SECONDS = 30  # doubled for every further failure
    LOGIN_BACKOFF_MAX_SECONDS = 3600
    # How long a browser stays a known device for an account it signed in to (its device
    # cookie lets it through the account's back-off: portal/auth/devices.py).
    DEVICE_COOKIE_DAYS = 90
    MFA_REQUIRED_ROLES = ("prescriber", "admin")

    # argon2id parameters (OWASP's minimum profile: 19 MiB, t=2, p=1).
    PASSWORD_HASH_TIME_COST = 2
    PASSWORD_HASH_MEMORY_KIB = 19 * 1024
    PASSWORD_HASH_PARALLELISM = 1
    PASSWORD_MIN_LENGTH = 12
    PASSWORD_MAX_LENGTH = 256

    # Largest request body accepted (a bigger field is refused with a message, not a crash).
    # Sized for the largest legitimate form: a note (or addendum) of NOTE_MAX_CHARS =
    # 200,000 characters. One character can take 4 bytes of UTF-8 and each byte 3 when
    # form-encoded (%F0%9F%98%80): 200,000 x 12 = 2.4 MB, plus the other fields. Anything
    # larger is answered 413 before a view runs; a note at the limit must never be.
    MAX_CONTENT_LENGTH = 3 * 1024 * 1024
    MAX_FIELD_LENGTH = 10_000
    # Flask parses at most 500 kB of form data by default and answers 413 before any view
    # runs; parse up to the body limit so forms can refuse an oversized field themselves.
    MAX_FORM_MEMORY_SIZE = MAX_CONTENT_LENGTH

    # Where phone numbers without a country code are assumed to be.
    DEFAULT_PHONE_REGION = "US"

    # FHIR API clients (portal/fhir/clients.py): how long an access token lives (SMART
    # Backend Services suggests at most five minutes), the request limit a new client gets,
    # and the token endpoint's URL as clients see it, when a proxy makes it differ from the
    # URL the app builds (client assertions must name it as their audience).
    FHIR_TOKEN_SECONDS = 300
    FHIR_RATE_LIMIT_PER_MINUTE = 600
    FHIR_TOKEN_URL: str | None = None
    # A private-key client's jwks_url (portal/fhir/jwks.py): https to public addresses only;
    # plain http to a loopback address only with this on (tests, local development), and
    # how long the token endpoint waits for the client's server.
    FHIR_JWKS_ALLOW_HTTP_LOOPBACK = False
    FHIR_JWKS_TIMEOUT_SECONDS = 3

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the server-side session
    SEND_FILE_MAX_AGE_DEFAULT = 3600


# Variables read from the environment: PORTAL_<NAME> -> app.config[<NAME>].
ENVIRONMENT_VARIABLES = {
    "DATABASE_URL": "SQLAlchemy URL of the database (default: SQLite in the instance folder)",
    "INSTANCE_PATH": "folder holding config.py, the SQLite database and demo credentials",
    "SECRET_KEY": "signs CSRF tokens; overrides the generated one in instance/config.py",
    "DATA_ENCRYPTION_KEY": "Fernet key encrypting secrets at rest (TOTP seeds, credentials)",
    "AUDIT_KEY": "keys the audit trail's MACs and checkpoints; overrides instance/config.py's",
    "AUDIT_CHECKPOINT_PATH": "the audit checkpoint file (default instance/audit-checkpoints.jsonl)",
    "AUDIT_CHECKPOINT_MINUTES": "how often the worker writes an audit checkpoint (default 5)",
    "AUDIT_SEAL_GRACE_MINUTES": "how long an audit event may wait for the sealer (default 5)",
    "OUTBOX_MAX_ATTEMPTS": "tries of an outbox message before it is dead (default 8)",
    "OUTBOX_LEASE_SECONDS": "how long a worker holds a message it delivers (default 120)",
    "WEBHOOK_MAX_BYTES": "the largest webhook body stored (default 262144)",
    "LAB_LISTENER_HOST": "address the HL7 lab results listener binds (default 127.0.0.1)",
    "LAB_LISTENER_PORT": "port of the HL7 lab results listener, MLLP (default 2575)",
    "LAB_MESSAGE_MAX_BYTES": "the largest HL7 message the listener takes (default 16 MB)",
    "LAB_DROP_FOLDER": "folder of HL7 result files the worker files (default: none)",
    "CLINIC_DISPLAY_SECONDS": "how long a process reuses the clinic's name and zone (default 10)",
    "SESSION_IDLE_MINUTES": "idle time-out of a signed-in session (default 15)",
    "SESSION_ABSOLUTE_HOURS": "absolute lifetime of a session (default 12)",
    "DEVICE_COOKIE_DAYS": "days a browser stays known to an account it signed in to (default 90)",
    "FHIR_TOKEN_SECONDS": "lifetime of a FHIR API access token in seconds (default 300)",
    "FHIR_TOKEN_URL": "the FHIR token endpoint's public URL, if a proxy changes it",
    "FHIR_JWKS_ALLOW_HTTP_LOOPBACK": "1: a client's jwks_url may be http:// on loopback (dev)",
    "FHIR_JWKS_TIMEOUT_SECONDS": "how long the token endpoint waits for a jwks_url (default 3)",
    "HTTPS": "1 behind HTTPS: Secure __Host- cookies and HSTS (default 0)",
    "LOG_LEVEL": "application log level (default INFO)",
}


def instance_path_from_environment() -> str | None:
    """The instance folder named by PORTAL_INSTANCE_PATH, if any (read before Flask starts)."""
    value = os.environ.get("PORTAL_INSTANCE_PATH")
    return str(Path(value).resolve()) if value else None


# Variables whose value is text whatever it looks like (a key of digits stays a string).
TEXT_VARIABLES = frozenset(
    {
        "DATABASE_URL",
        "SECRET_KEY",
        "DATA_ENCRYPTION_KEY",
        "AUDIT_KEY",
        "AUDIT_CHECKPOINT_PATH",
        "LAB_LISTENER_HOST",
        "LAB_DROP_FOLDER",
    }
)
_AUDIT_KEY_LINE = re.compile(r"^AUDIT_KEY\s*=", re.MULTILINE)


def ensure_instance_config(instance_path: str) -> Path:
    """Create the instance folder (0700) and, if missing, its config.py (0600) with fresh
    random keys.

    A config.py written before the audit trail was keyed gets an ``AUDIT_KEY`` appended,
    unless ``PORTAL_AUDIT_KEY`` provides it (a second key in the file would silently take
    over the day the variable is unset, and nothing already written would verify).
    """
    folder = make_private_folder(instance_path)
    config_file = folder / "config.py"
    if not config_file.exists():
        content = (
            "# Written on first start. Keep this file secret and backed up:\n"
            "# losing DATA_ENCRYPTION_KEY makes encrypted secrets unreadable, losing\n"
            "# AUDIT_KEY makes the audit trail unverifiable.\n"
            f"SECRET_KEY = {secrets.token_urlsafe(48)!r}\n"
            f"DATA_ENCRYPTION_KEY = {Fernet.generate_key().decode()!r}\n"
            f"AUDIT_KEY = {secrets.token_urlsafe(32)!r}\n"
        )
        try:
            fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process (a second gunicorn worker) wrote it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
    if not os.environ.get("PORTAL_AUDIT_KEY"):
        _ensure_audit_key(config_file)
    return config_file


def _ensure_audit_key(config_file: Path) -> None:
    """Append an ``AUDIT_KEY`` to a config.py that has none, once, whoever races for it.

    Under an exclusive lock on the file, so two processes starting together cannot both
    append one (each would then sign with a key the other overwrote).
    """
    with config_file.open("r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        text = handle.read()
        if _AUDIT_KEY_LINE.search(text):
            return
        handle.seek(0, os.SEEK_END)
        handle.write(
            ("" if text.endswith("\n") or not text else "\n")
            + "# Added when the audit trail was keyed. Keep it secret and backed up: losing\n"
            + "# it makes the audit trail unverifiable.\n"
            + f"AUDIT_KEY = {secrets.token_urlsafe(32)!r}\n"
        )


def apply_environment(config: dict) -> None:
    """Copy PORTAL_* environment variables into the config, parsing numbers and booleans."""
    for key, raw in os.environ.items():
        if not key.startswith("PORTAL_") or key in ("PORTAL_INSTANCE_PATH",):
            continue
        name = key.removeprefix("PORTAL_")
        if name.startswith("TEST_"):
            continue
        config[name] = raw.strip() if name in TEXT_VARIABLES else _parse_value(raw)
    if config.get("DATABASE_URL"):
        config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]


def _parse_value(raw: str):
    """Numbers become ints and yes/no words booleans, so PORTAL_HTTPS=1 and =true both work."""
    value = raw.strip()
    if value.lower() in ("true", "yes", "on"):
        return True
    if value.lower() in ("false", "no", "off", ""):
        return False
    try:
        return int(value)
    except ValueError:
        return value

"""Databases the benchmark runs against: made with the app's own migrations and seed code.

A seeded database is reused by later runs when it holds the same number of patients and the
seed code has not changed since (a fingerprint of the demo clinic and patients modules); otherwise
it is dropped and seeded again.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
INSTANCE = OUT / "instance"  # the bench's own instance folder: config.py with its own keys
DEFAULT_POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

BENCH_USERNAME = "bench"
# Only ever set on the bench's own throw-away databases.
BENCH_PASSWORD = "bench runner walks the long corridor"  # noqa: S105
SEED = 1


def _bench_actor():
    from portal.actors import SOURCE_CLI, Actor

    return Actor(id=None, username="bench", source=SOURCE_CLI)


@dataclass
class Target:
    """One database of one size: where it is and how it was made."""

    dialect: str  # "sqlite" or "postgresql"
    rows: int
    url: str
    seed_seconds: float | None = None  # None: reused from an earlier run
    seeded_at: str | None = None
    cached_seed_seconds: float | None = None  # how long the (possibly earlier) seed took

    @property
    def label(self) -> str:
        return "SQLite" if self.dialect == "sqlite" else "PostgreSQL"

    @property
    def key(self) -> str:
        name = make_url(self.url).database or ""
        extra = "-sched" if "sched" in name else "-chart" if "chart" in name else ""
        extra = "-fhir" if "fhir" in name else extra
        extra = "-rx" if Path(name).name.startswith(("portal_bench_rx", "portal-rx")) else extra
        return f"{self.dialect}-{self.rows}{extra}"


def sqlite_target(rows: int, prefix: str = "portal") -> Target:
    path = OUT / "sqlite" / f"{prefix}-{rows}.sqlite"
    return Target("sqlite", rows, f"sqlite:///{path}")


def postgres_database_name(rows: int, prefix: str = "portal_bench") -> str:
    """``portal_bench`` for the 1,000,000-patient database, ``portal_bench_<rows>`` otherwise.

    The scheduling run passes its own prefix, so it never alters the search run's databases.
    """
    return prefix if rows == 1_000_000 else f"{prefix}_{rows}"


def postgres_target(server_url: str, rows: int, prefix: str = "portal_bench") -> Target:
    url = make_url(server_url).set(
        drivername="postgresql+psycopg", database=postgres_database_name(rows, prefix)
    )
    return Target("postgresql", rows, url.render_as_string(hide_password=False))


def postgres_reachable(server_url: str) -> str | None:
    """The server's version when it answers, else None."""
    engine = create_engine(
        make_url(server_url).set(drivername="postgresql+psycopg"),
        connect_args={"connect_timeout": 3},
    )
    try:
        with engine.connect() as connection:
            return connection.execute(text("SHOW server_version")).scalar()
    except Exception:  # any failure means "not available": the run goes on without it
        return None
    finally:
        engine.dispose()


def seed_fingerprint() -> str:
    """Changes whenever the seed code changes, so cached databases are seeded again."""
    from portal.demo import clinic, patients

    source = inspect.getsource(patients) + inspect.getsource(clinic)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _meta_path(target: Target) -> Path:
    return OUT / f"{target.key}.json"


def _count_patients(url: str) -> int | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM patients")).scalar()
    except Exception:  # missing database or table: not seeded
        return None
    finally:
        engine.dispose()


def _enough_patients(found: int | None, rows: int, added_patients: bool) -> bool:
    if found is None:
        return False
    return found >= rows if added_patients else found == rows


def _recreate(target: Target, server_url: str | None) -> None:
    if target.dialect == "sqlite":
        _remove_sqlite_files(Path(make_url(target.url).database))
    else:
        fresh_postgres_url(server_url, make_url(target.url).database)


def _remove_sqlite_files(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", ".write-lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def fresh_sqlite_url(name: str) -> str:
    """The URL of an empty SQLite database ``bench/out/sqlite/<name>.sqlite`` (any earlier
    file of that name removed), for a benchmark that seeds its own small database."""
    path = OUT / "sqlite" / f"{name}.sqlite"
    _remove_sqlite_files(path)
    return f"sqlite:///{path}"


def fresh_postgres_url(server_url: str, database: str) -> str:
    """The URL of the empty PostgreSQL database ``database`` on ``server_url`` (dropped and
    made again)."""
    server = make_url(server_url).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return server.set(database=database).render_as_string(hide_password=False)


def app_for(url: str):
    """The portal application on ``url`` with the bench's instance folder."""
    from portal import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": str(INSTANCE)})


def ensure_seeded(
    target: Target, server_url: str | None, *, reseed: bool, log, added_patients: bool = False
) -> Target:
    """Migrate, and seed ``target.rows`` patients unless an identical database is cached.

    ``added_patients``: the benchmark adds patients of its own to the registry on each run
    (the prescription benches' chart patient), so a cached database may hold more than
    ``target.rows``; fewer still means a seed that did not finish."""
    from flask_migrate import upgrade

    from portal.demo.clinic import seed_clinic_and_users
    from portal.demo.patients import seed_patients
    from portal.extensions import db

    fingerprint = seed_fingerprint()
    meta_path = _meta_path(target)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    cached = (
        not reseed
        and meta.get("rows") == target.rows
        and meta.get("fingerprint") == fingerprint
        and _enough_patients(_count_patients(target.url), target.rows, added_patients)
    )
    if not cached:
        log(f"  {target.label}: seeding {target.rows:,} patients ...")
        _recreate(target, server_url)
    app = app_for(target.url)
    with app.app_context():
        upgrade()  # also brings a cached database up to new revisions
        if not cached:
            seed_clinic_and_users()
            started = time.perf_counter()
            seed_patients(target.rows, seed=SEED, batch_size=10_000)
            seconds = time.perf_counter() - started
            if target.dialect == "postgresql":
                # What autovacuum would soon do after a bulk load: give the planner statistics.
                db.session.execute(text("ANALYZE"))
                db.session.commit()
            meta = {
                "rows": target.rows,
                "fingerprint": fingerprint,
                "seed_seconds": round(seconds, 1),
                "seeded_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            meta_path.write_text(json.dumps(meta, indent=2) + "\n")
            target.seed_seconds = seconds
            log(f"  {target.label}: {target.rows:,} patients seeded in {seconds:.1f} s")
        else:
            log(
                f"  {target.label}: reusing the {target.rows:,}-patient database "
                f"(seeded {meta.get('seeded_at')} in {meta.get('seed_seconds')} s)"
            )
        target.seeded_at = meta.get("seeded_at")
        ensure_bench_user()
        db.session.remove()
        db.engine.dispose()
    if cached:
        target.seed_seconds = None
    target.cached_seed_seconds = meta.get("seed_seconds")
    return target


def ensure_bench_user() -> None:
    """A front-desk user without MFA whose password the bench knows (reset on every run)."""
    from sqlalchemy import select

    from portal.audit import services as audit
    from portal.auth.models import User
    from portal.auth.passwords import hash_password
    from portal.extensions import db
    from portal.transaction import use_case

    password_hash = hash_password(BENCH_PASSWORD)
    with use_case():
        user = db.session.scalars(select(User).where(User.username == BENCH_USERNAME)).first()
        created = user is None
        if created:
            user = User(username=BENCH_USERNAME, full_name="Bench Runner", password_hash="")
            db.session.add(user)
        user.password_hash = password_hash
        user.set_roles(["front_desk"])
        user.is_enabled = True
        user.mfa_enabled = False
        user.totp_secret_encrypted = None
        user.failed_sign_ins = 0
        user.locked_until = None
        if created:
            audit.record(_bench_actor(), "user.create", obj=user, category="user accounts")

"""Flask commands: ``seed-demo``, ``create-user``, ``purge-sessions``, ``audit verify``.

Commands only parse their options and call the domains' use cases (or the demo seeders);
they act as the command-line actor.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from portal.actors import command_line
from portal.audit.services import verify_chain
from portal.auth import services as auth_services
from portal.auth.models import ServerSession, User
from portal.demo.charting import seed_charting
from portal.demo.clinic import credentials_text, seed_clinic_and_users, write_credentials_file
from portal.demo.patients import seed_patients
from portal.demo.scheduling import seed_schedule
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case


def register(app) -> None:
    app.cli.add_command(seed_demo)
    app.cli.add_command(create_user_command)
    app.cli.add_command(audit_cli)
    app.cli.add_command(purge_sessions)


@click.command("seed-demo")
@with_appcontext
@click.option("--patients", "patient_count", default=200, show_default=True, type=int)
@click.option("--seed", default=1, show_default=True, type=int, help="same seed, same data")
@click.option("--if-empty", is_flag=True, help="do nothing when users already exist")
@click.option("--batch-size", default=10_000, show_default=True, type=int)
def seed_demo(patient_count: int, seed: int, if_empty: bool, batch_size: int) -> None:
    """Create the demo clinic, one user per role and PATIENTS patients."""
    if if_empty and db.session.scalar(select(func.count()).select_from(User)):
        click.echo("Demo data already present; nothing to do.")
        return
    credentials = seed_clinic_and_users()
    started = time.perf_counter()
    created = seed_patients(patient_count, seed=seed, batch_size=batch_size)
    elapsed = time.perf_counter() - started
    click.echo(f"{created} patients in {elapsed:.1f} s.")
    booked = seed_schedule(seed=seed)
    click.echo(f"Schedule: appointment types, rooms, Dr. Lee's weekly hours, {booked} visits.")
    charted = seed_charting(seed=seed)
    click.echo(f"Charting: note templates, snippets, and past visits of {charted} patients.")
    if credentials:
        text = credentials_text(credentials)
        click.echo(text)
        click.echo(f"Written to {write_credentials_file(text, current_app.instance_path)}")


@click.command("create-user")
@with_appcontext
@click.option("--username", prompt=True)
@click.option("--full-name", prompt=True)
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(["front_desk", "nurse", "prescriber", "admin"]),
)
@click.option("--email", default=None)
@click.password_option()
def create_user_command(username, full_name, roles, email, password):
    """Create a staff account (for the first admin of a new installation)."""
    try:
        user = auth_services.create_user(
            actor=command_line(),
            username=username,
            full_name=full_name,
            email=email,
            roles=list(roles),
            password=password,
        )
    except Refused as error:
        raise click.ClickException(error.message) from error
    click.echo(f"Created {user.username} ({', '.join(user.roles)}).")
    if auth_services.mfa_required_for(user):
        click.echo("Two-step sign-in is required for this role: it is set up at first sign-in.")


@click.command("purge-sessions")
@with_appcontext
@click.option("--keep-days", default=30, show_default=True, type=int)
def purge_sessions(keep_days: int) -> None:
    """Delete ended sessions older than KEEP_DAYS and abandoned anonymous ones (run daily)."""
    now = utcnow()
    lifetime = timedelta(hours=current_app.config["SESSION_ABSOLUTE_HOURS"])
    with use_case():
        ended = db.session.execute(
            db.delete(ServerSession).where(ServerSession.ended_at < now - timedelta(days=keep_days))
        ).rowcount
        abandoned = db.session.execute(
            db.delete(ServerSession).where(
                ServerSession.ended_at.is_(None), ServerSession.created_at < now - lifetime
            )
        ).rowcount
    click.echo(f"Deleted {ended} ended and {abandoned} expired sessions.")


audit_cli = AppGroup("audit", help="The audit trail.")


@audit_cli.command("verify")
def audit_verify():
    """Walk the hash chain; exit 1 naming the first altered, removed or inserted event."""
    checked, problem = verify_chain()
    if problem:
        click.echo(f"Audit trail BROKEN after {checked} good events: {problem}", err=True)
        sys.exit(1)
    click.echo(f"Audit trail intact: {checked} events verified.")

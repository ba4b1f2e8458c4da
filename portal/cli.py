"""Flask commands: ``seed-demo``, ``create-user``, ``purge-sessions``, ``audit verify``,
``audit checkpoint``, ``worker [--once]``, ``rxnorm-load FOLDER``, ``lab-listener``,
``api-client register`` / ``disable``.

Commands only parse their options and call the domains' use cases (or the demo seeders);
they act as the command-line actor.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from portal import worker
from portal.actors import command_line
from portal.admin import jobs as account_jobs
from portal.audit import checkpoints, jobs, sealing
from portal.audit import services as audit
from portal.audit.verification import verify
from portal.auth import services as auth_services
from portal.auth.models import ServerSession, User
from portal.demo.api_client import api_client_text, seed_api_client
from portal.demo.charting import seed_charting
from portal.demo.clinic import credentials_text, seed_clinic_and_users, write_credentials_file
from portal.demo.integrations import seed_eprescribing, seed_lab
from portal.demo.patients import seed_patients
from portal.demo.prescriptions import seed_renewal_demo
from portal.demo.scheduling import seed_schedule
from portal.extensions import db
from portal.fhir import clients as api_clients
from portal.fhir.bulk import jobs as fhir_bulk_jobs
from portal.fhir.models import AUTH_CLIENT_SECRET, AUTH_PRIVATE_KEY_JWT, ApiClient
from portal.integrations import jobs as integration_jobs
from portal.labs import jobs as lab_jobs
from portal.labs.listener import run_listener
from portal.prescriptions import jobs as prescription_jobs
from portal.terminology import drugs, rxnorm_rrf
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case


def register(app) -> None:
    app.cli.add_command(seed_demo)
    app.cli.add_command(create_user_command)
    app.cli.add_command(audit_cli)
    app.cli.add_command(purge_sessions)
    app.cli.add_command(worker_command)
    app.cli.add_command(rxnorm_load)
    app.cli.add_command(lab_listener)
    app.cli.add_command(api_client_cli)


@click.command("seed-demo")
@with_appcontext
@click.option("--patients", "patient_count", default=200, show_default=True, type=int)
@click.option("--seed", default=1, show_default=True, type=int, help="same seed, same data")
@click.option("--if-empty", is_flag=True, help="do nothing when users already exist")
@click.option("--batch-size", default=10_000, show_default=True, type=int)
def seed_demo(patient_count: int, seed: int, if_empty: bool, batch_size: int) -> None:
    """Create the demo clinic, one user per role and PATIENTS patients, a FHIR API client,
    and switch on e-prescribing against the local DoseSpot sandbox and labs against the lab
    sandbox."""
    if if_empty and db.session.scalar(select(func.count()).select_from(User)):
        if seed_eprescribing():
            click.echo("E-prescribing: DoseSpot enabled against the sandbox, Dr. Lee linked.")
        if seed_lab():
            click.echo("Labs: the HL7 lab connector enabled against the lab sandbox (:2576).")
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
    if seed_eprescribing():
        click.echo("E-prescribing: DoseSpot enabled against the sandbox, Dr. Lee linked.")
    if seed_renewal_demo():
        click.echo(
            "Rx inbox: a lisinopril of Dr. Lee's queued for the sandbox, which asks for its "
            "renewal once it reaches the pharmacy."
        )
    if seed_lab():
        click.echo("Labs: the HL7 lab connector enabled against the lab sandbox (:2576).")
    api_client = seed_api_client() if credentials else None
    if credentials:
        text = credentials_text(credentials)
        click.echo(text)
        # The API client's secret goes to the file only, never to the terminal.
        if api_client:
            text += api_client_text(api_client)
        click.echo(f"Written to {write_credentials_file(text, current_app.instance_path)}")
        if api_client:
            click.echo(
                f"FHIR: {api_client['name']} registered; its client id and secret are in that file."
            )


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
@click.option("--batch-size", default=5000, show_default=True, type=int, hidden=True)
def audit_verify(batch_size: int):
    """Check every event, link and checkpoint; exit 1 naming the first problem.

    The run is itself audited (who checked, and what was found), as reading the report is.
    """
    report = verify(batch_size=batch_size)
    problems = len(report.problems) + report.more_problems
    with use_case():
        audit.record(
            command_line(),
            "audit.verify",
            category="audit trail",
            object_type="audit_events",
            outcome="success" if report.ok else "error",
            detail=f"{report.verified} events, {problems} problems"
            + (f"; first: {report.problems[0]}" if report.problems else ""),
        )
    oldest = (
        f", the oldest since {report.oldest_unsealed:%Y-%m-%d %H:%M:%S} UTC"
        if report.oldest_unsealed
        else ""
    )
    summary = (
        f"{report.verified} events verified ({report.sealed} sealed, {report.legacy} of them "
        f"legacy; {report.unsealed} awaiting the sealer{oldest})."
    )
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if not report.ok:
        click.echo(f"Audit trail BROKEN: {report.problems[0]}", err=True)
        for problem in report.problems[1:]:
            click.echo(f"  also: {problem}", err=True)
        if report.more_problems:
            click.echo(f"  and {report.more_problems} more problems", err=True)
        click.echo(summary, err=True)
        sys.exit(1)
    click.echo(f"Audit trail intact: {summary}")
    latest = report.latest_checkpoint
    if latest is not None:
        click.echo(
            f"Checkpoints: {report.checkpoints} in {report.checkpoint_file}; the chain passes "
            f"through each, the newest being #{latest.seq} of {latest.at}."
        )


@audit_cli.command("checkpoint")
def audit_checkpoint():
    """Seal pending events and append the chain's head to the checkpoint file."""
    written = sealing.checkpoint()
    if written is None:
        click.echo("The audit trail is empty: nothing to checkpoint.")
        return
    click.echo(
        f"Checkpoint #{written.seq} of {written.at} appended to {checkpoints.checkpoint_path()}."
    )


@click.command("worker")
@click.option("--once", is_flag=True, help="Run every job once (deliver what is due) and exit.")
@with_appcontext
def worker_command(once: bool):
    """Run the background jobs (seal audit events, write checkpoints, deliver the outbox)
    until stopped."""
    app = current_app._get_current_object()
    stop = threading.Event()
    periodic = (
        jobs.periodic_jobs(app.config)
        + integration_jobs.periodic_jobs(app.config, stop)
        + prescription_jobs.periodic_jobs(app.config)
        + account_jobs.periodic_jobs(app.config)
        + fhir_bulk_jobs.periodic_jobs(app.config, stop)
        + lab_jobs.periodic_jobs(app.config)
    )
    if once:
        worker.run_once(app, periodic)
    else:
        worker.run_until_signalled(app, periodic, stop)


@click.command("rxnorm-load")
@with_appcontext
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def rxnorm_load(folder: Path) -> None:
    """Replace the shipped drug catalog with one built from an RxNorm release: the RRF files
    (RXNCONSO, RXNREL, RXNSAT) of the "current prescribable content" subset in FOLDER. The
    catalog is written into the instance folder; delete its drug_products.csv to go back."""
    try:
        loaded = rxnorm_rrf.load_into_instance(folder, Path(current_app.instance_path))
    except (rxnorm_rrf.RrfError, OSError) as error:
        raise click.ClickException(str(error)) from error
    drugs.forget_loaded()
    try:
        drugs.knowledge()  # read it back now: a catalog the checks cannot read must not wait
    except drugs.KnowledgeUnavailable as error:
        raise click.ClickException(f"the new catalog cannot be read: {error}") from error
    click.echo(
        f"RxNorm catalog written to {loaded.products_file}: {loaded.products} products "
        f"({loaded.controlled} controlled), {loaded.ingredients} ingredients; "
        f"{loaded.skipped} products left out (no ingredient or dose form)."
    )


@click.command("lab-listener")
@click.option("--host", default=None, help="address to bind (default LAB_LISTENER_HOST)")
@click.option("--port", default=None, type=int, help="MLLP port (default LAB_LISTENER_PORT)")
@click.option("--ack-delay", default=0.0, type=float, hidden=True)
@with_appcontext
def lab_listener(host: str | None, port: int | None, ack_delay: float) -> None:
    """Receive HL7 v2 lab results over MLLP: store, acknowledge, file (until stopped)."""
    app = current_app._get_current_object()
    run_listener(
        app,
        host or app.config["LAB_LISTENER_HOST"],
        port if port is not None else app.config["LAB_LISTENER_PORT"],
        ack_delay=ack_delay,
    )


api_client_cli = AppGroup("api-client", help="FHIR API clients (also under Admin, API clients).")


@api_client_cli.command("register")
@click.option("--name", required=True, help="how the audit trail will name it")
@click.option("--responsible", required=True, help="username of the person who answers for it")
@click.option("--scope", "scopes", multiple=True, default=["system/*.read"], show_default=True)
@click.option(
    "--public-key-file",
    type=click.File("r"),
    default=None,
    help="its JWKS or PEM public key (private-key JWT); without it, a secret is made",
)
@click.option("--rate-limit", type=int, default=None, help="requests a minute")
@with_appcontext
def api_client_register(name, responsible, scopes, public_key_file, rate_limit):
    """Register an API client and print its client id (and its secret, this once)."""
    person = db.session.scalar(select(User.id).where(User.username == responsible.lower()))
    try:
        registered = api_clients.register_client(
            command_line(),
            name=name,
            responsible_user_id=person or 0,
            scopes=list(scopes),
            auth_method=AUTH_PRIVATE_KEY_JWT if public_key_file else AUTH_CLIENT_SECRET,
            public_key=public_key_file.read() if public_key_file else None,
            rate_limit_per_minute=rate_limit,
        )
    except Refused as error:
        raise click.ClickException(error.message) from error
    click.echo(f"client_id: {registered.client.client_id}")
    click.echo(f"scopes: {registered.client.scopes}")
    if registered.secret:
        click.echo(f"client_secret: {registered.secret}")
        click.echo("The secret is shown only this once; only its hash is kept.", err=True)


@api_client_cli.command("disable")
@click.argument("client_id")
@with_appcontext
def api_client_disable(client_id):
    """Disable a client at once (its tokens stop at their next request)."""
    found = db.session.scalar(select(ApiClient.id).where(ApiClient.client_id == client_id))
    if found is None:
        raise click.ClickException("No API client has that client id.")
    client = api_clients.set_enabled(command_line(), found, False)
    click.echo(f"{client.name} is disabled.")

"""What the bulk export and import tests share: tokens of the interim access layer (the
lead swaps in fauth's ``make_api_client`` / ``bearer_token`` at merge), tiny resource types
registered for a test, and running the worker's export job.

The resource types themselves are fres's and fapi's: until they land, the export machinery
is tested with ``RowSpec`` (patients' rows, read in keyset chunks as the real ones are) and
``CountingSpec`` (as many small resources as asked, without a database).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from portal.extensions import db
from portal.fhir import clients
from portal.fhir.bulk import export
from portal.fhir.models import ApiClient, ApiToken
from portal.fhir.spec import Criterion, Page
from portal.patients.models import Patient
from portal.timeutil import utcnow
from tests.fhir.support import ALL_SCOPES, bearer, make_api_client

CHUNK = 500


def give_token(app, token: str, *, name="Acme HIE", scopes=("system/*.read",)):
    """Make ``token`` itself a valid access token with ``scopes`` of the API client called
    ``name`` (registered, with every scope, the first time a test names it): real rows, so
    the token check, the client's identity and the audit trail's ``api:<name>`` are the
    real ones. Returns the request headers carrying it."""
    clients_made = app.extensions.setdefault("tests.fhir.bulk.clients", {})
    if name not in clients_made:
        client_id, _secret = make_api_client(app, ALL_SCOPES, name=name)
        with app.app_context():
            clients_made[name] = db.session.scalar(
                select(ApiClient.id).where(ApiClient.client_id == client_id)
            )
    now = utcnow()
    with app.app_context():
        db.session.execute(
            insert(ApiToken).values(
                token_hash=clients.hash_secret(token),
                client_id=clients_made[name],
                scopes=" ".join(scopes),
                issued_at=now,
                expires_at=now + timedelta(minutes=5),
                revoked=False,
            )
        )
        db.session.commit()
    return bearer(token)


def client_pk(app, name="Acme HIE") -> str:
    """The id a request's ``g.fhir_client.id`` carries for the client called ``name``."""
    return str(app.extensions["tests.fhir.bulk.clients"][name])


class RowSpec:
    """Patients as minimal Patient resources, streamed by keyset like the real type."""

    type = "Patient"
    search_params: dict[str, str] = {}
    includes: dict[str, str] = {}

    def read(self, fhir_id: str) -> dict | None:
        return None

    def search(self, criteria: list[Criterion], after: str | None, count: int) -> Page:
        return Page([])

    def count(self, criteria: list[Criterion]) -> int:
        return 0

    def for_patient(self, patient_id: int) -> Iterator[dict]:
        return iter(())

    def stream(self, since: datetime | None, patient_ids: list[int] | None) -> Iterator[dict]:
        last = 0
        while True:
            query = select(Patient.id, Patient.family_name, Patient.updated_at).where(
                Patient.id > last
            )
            if since is not None:
                query = query.where(Patient.updated_at >= since)
            rows = db.session.execute(query.order_by(Patient.id).limit(CHUNK)).all()
            if not rows:
                return
            for row in rows:
                yield {
                    "resourceType": "Patient",
                    "id": str(row.id),
                    "name": [{"family": row.family_name}],
                }
            last = rows[-1].id


class CountingSpec(RowSpec):
    """``total`` small resources of ``type`` with no database; ``on_item(n)`` is called
    before the n-th (from 1), to act in the middle of a run."""

    def __init__(self, type_name: str, total: int, on_item: Callable[[int], None] | None = None):
        self.type = type_name
        self.total = total
        self.on_item = on_item

    def stream(self, since, patient_ids):
        for number in range(1, self.total + 1):
            if self.on_item is not None:
                self.on_item(number)
            yield {"resourceType": self.type, "id": str(number), "status": "final"}


def run_exports(app, stop: threading.Event | None = None) -> str | None:
    """One turn of the worker's export job, as the worker runs it."""
    with app.app_context():
        try:
            return export.run_due_exports("test-worker", stop=stop)
        finally:
            db.session.remove()


def job_folder(app, job_id: int):
    """Where the worker writes a job's files."""
    with app.app_context():
        return export.job_folder(job_id)

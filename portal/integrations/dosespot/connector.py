"""The DoseSpot e-prescribing connector: settings, ``check()``, the launch of DoseSpot's own
screen, the reads a person waits for, and the outbox operations.

Outbox operations (``deliver``) and their payloads (plain JSON)::

    "sync_patient":      {"clinician_id": 2001, "patient": {snapshot, see patients.py},
                          "dosespot_patient_id": 10001 | None}
        -> {"dosespot_patient_id": 10001, "created": bool}

    "send_prescription": {"clinician_id": 2001, "dosespot_patient_id": 10001 | None,
                          "patient": {snapshot} | None,   # used when there is no id yet
                          "prescription_id": "rx-41" | None,   # default: the idempotency key
                          "prescription": {"dispensable_drug_id": 5001,
                                           "dispense_unit_id": 26, "quantity": "30",
                                           "refills": 2, "days_supply": 30,
                                           "directions": "...", "pharmacy_id": 3001,
                                           "pharmacy_notes": "", "no_substitutions": False,
                                           "effective_date": "2025-01-31" | None,
                                           "diagnoses": [{"code": "I10", "description": ""}]}}
        -> {"dosespot_patient_id", "dosespot_prescription_id", "created": bool,
            "sent": bool, "status": "Sending" | ...}

    "cancel_prescription": {"clinician_id": 2001 | None, "dosespot_patient_id": 10001,
                            "dosespot_prescription_id": 7001, "comment": "..."}
        -> {"dosespot_prescription_id": 7001, "requested": bool}

    "approve_renewal" / "approve_change":
                           {"clinician_id": 2001, "request_id": 9001, "refills": 2,
                            "comment": "...", "dosespot_patient_id": 10001 | None,
                            "approved_at": "2026-12-06T15:20:01+00:00" | None}
        -> {"request_id": 9001, "answered": bool,
            "patient_prescriptions": [{chart_prescriptions' shape}] | None}
    "deny_renewal" / "deny_change":
                           {"clinician_id": 2001, "request_id": 9001,
                            "denial_reason": "needs_appointment", "note": "..."}
        -> {"request_id": 9001, "answered": bool}   # False: it was answered before

A pharmacy's request is answered once at DoseSpot (a second answer is refused). A retried
answer whose first try got through (its answer lost on the way back) reads the pending list:
a request no longer pending is taken as answered, not as an error.

An approval makes a NEW prescription at DoseSpot, whose id the approval's answer does not
give (its ``IdentifierResponse.Id`` is not documented to be it, and is never taken for it).
So after an approval (first try or retry) the patient's prescriptions written since the
approval's day are read and returned (``patient_prescriptions``, in ``chart_prescriptions``'
shape: a match needs their drug and time, the link their statuses; None when there was
nothing to read them by or the read failed; the approval stands either way). Which of them
the approval made is the domain's decision (it knows which are linked to its own
prescriptions): ``portal/prescriptions/approvals.py``.

DoseSpot has no idempotency key, so a retried create could make a second prescription. Our
id travels as ``NonDoseSpotPrescriptionId``; before creating, the patient's prescriptions
are read and one already carrying our id is reused, and it is sent only while it is still
pending. A patient is likewise found by name, birth date and MRN before one is created.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from portal.dates import bounded
from portal.integrations.base import (
    EPrescribingConnector,
    Field,
    IntegrationError,
    PermanentError,
    SettingRefused,
    TransientError,
)
from portal.integrations.dosespot import sso, webhooks
from portal.integrations.dosespot.client import (
    DoseSpotClient,
    DoseSpotRefused,
    NotDoseSpot,
    TokenRefused,
    Unreachable,
)
from portal.integrations.dosespot.patients import patient_payload, patient_problems
from portal.integrations.dosespot.statuses import (
    PRESCRIPTION_STATUS,
    SENDABLE,
    fhir_status,
    medication_status_name,
    prescription_status_name,
)

WEBHOOK_SECRET_LENGTH = 32
# How far back a retried send looks for its first try (an admin may replay a failed message
# days later; a prescription replayed after a month deserves a new decision, not a retry).
SEND_LOOKBACK_DAYS = 35
# A cancel already asked for or answered (a retried cancel stops there).
CANCEL_ASKED = frozenset({"CancelRequested", "CancelPending", "Cancelled", "CancelDenied"})
CANCEL_COMMENT_MAX = 250
# A pharmacy request's answer: the comment and note as DoseSpot bounds them.
ANSWER_TEXT_MAX = 250
# The pharmacy requests' lists and answers, by the portal's kind of request.
REQUEST_PATHS = {"renewal": "api/refills", "change": "api/rxchanges"}
REQUEST_OPERATIONS = {
    "approve_renewal": ("renewal", "approve"),
    "deny_renewal": ("renewal", "deny"),
    "approve_change": ("change", "approve"),
    "deny_change": ("change", "deny"),
}
# A change request's type (DoseSpot's RxChangeType, by name or NCPDP's one-letter code) ->
# the portal's words for it.
CHANGE_TYPES = {
    "genericsubstitution": "generic_substitution",
    "g": "generic_substitution",
    "therapeuticinterchange": "therapeutic_substitution",
    "therapeuticsubstitution": "therapeutic_substitution",
    "t": "therapeutic_substitution",
    "priorauthorization": "prior_authorization",
    "priorauthorizationrequired": "prior_authorization",
    "p": "prior_authorization",
    "scriptclarification": "clarification",
    "clarification": "clarification",
    "s": "clarification",
}
# DoseSpot's ServiceLevel bits: what a pharmacy accepts electronically.
PHARMACY_SERVICES = {
    "NewRx": 1,
    "Refill": 2,
    "Change": 4,
    "RxFill": 8,
    "Cancel": 16,
    "EPCS": 2048,
}


class PatientNotReady(PermanentError):
    """The patient's record lacks what DoseSpot requires; ``problems`` say what to add, in a
    clinician's words (and hold no patient data, so they are also the message)."""

    def __init__(self, problems: list[str]):
        super().__init__("Patient record incomplete for DoseSpot: " + "; ".join(problems) + ".")
        self.problems = problems


def _today() -> date:
    return datetime.now(UTC).date()


class DoseSpotConnector(EPrescribingConnector):
    name = "dosespot"
    title = "DoseSpot e-prescribing"
    description = (
        "Prescriptions to US pharmacies through DoseSpot, and DoseSpot's prescribing screen "
        "in the chart."
    )
    fields = (
        Field("clinic_id", "Clinic id", type="integer", help="DoseSpot's id of this clinic"),
        Field("clinic_key", "Clinic key", type="secret"),
        Field("subscription_key", "Subscription key", type="secret"),
        Field(
            "admin_clinician_id",
            "Admin clinician id",
            type="integer",
            help="A DoseSpot clinician of this clinic: the connection check and background "
            "reads act as them (every DoseSpot token belongs to a clinician)",
        ),
        Field(
            "api_base_url",
            "API base URL",
            type="url",
            help="DoseSpot's host, e.g. https://my.staging.dosespot.com (/webapi/v2 is added)",
        ),
        Field(
            "sso_base_url",
            "SSO base URL",
            type="url",
            help="Where LoginSingleSignOn.aspx lives, e.g. https://my.staging.dosespot.com",
        ),
        Field(
            "webhook_secret",
            "Webhook secret",
            type="secret",
            help="The 32-character secret DoseSpot sends with each notification",
        ),
    )

    def __init__(self, settings: dict[str, Any]):
        super().__init__(settings)
        self._client: DoseSpotClient | None = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> DoseSpotClient:
        with self._client_lock:
            if self._client is None:
                self._client = DoseSpotClient(
                    self.settings["api_base_url"],
                    self.settings["clinic_id"],
                    self.settings["clinic_key"],
                    self.settings["subscription_key"],
                )
            return self._client

    @property
    def admin_clinician_id(self) -> int | str:
        return self.settings["admin_clinician_id"]

    # Settings --------------------------------------------------------------------------

    def check(self) -> None:
        """A token for the admin clinician, then DoseSpot's health call with it."""
        secret = self.settings.get("webhook_secret") or ""
        if len(secret) < WEBHOOK_SECRET_LENGTH:
            raise SettingRefused(
                "The webhook secret DoseSpot gives is 32 characters long.", "webhook_secret"
            )
        try:
            self.client.get("api/general/check", self.admin_clinician_id)
        except TokenRefused as refused:
            if refused.error == "subscription":
                raise SettingRefused(
                    "DoseSpot refused the subscription key.", "subscription_key"
                ) from refused
            if refused.error == "invalid_grant":
                raise SettingRefused(
                    "DoseSpot does not know this clinician in this clinic (or they are "
                    "locked out).",
                    "admin_clinician_id",
                ) from refused
            raise SettingRefused(
                "DoseSpot refused the clinic id, clinic key or subscription key.", "clinic_key"
            ) from refused
        except Unreachable as error:
            raise SettingRefused(
                "DoseSpot cannot be reached at this address.", "api_base_url"
            ) from error
        except NotDoseSpot as error:
            raise SettingRefused(
                "This address does not answer as DoseSpot's API does.", "api_base_url"
            ) from error

    # The embedded screen ---------------------------------------------------------------

    def launch_url(self, clinician_id: str, patient_id: str | None) -> str:
        return sso.launch_url(
            self.settings["sso_base_url"],
            self.settings["clinic_id"],
            self.settings["clinic_key"],
            clinician_id,
            patient_id,
        )

    def screen_origin(self) -> str:
        url = urlsplit(self.settings["sso_base_url"])
        return f"{url.scheme}://{url.netloc}"

    def patient_problems(self, snapshot: dict) -> list[str]:
        return patient_problems(snapshot, _today())

    # Webhooks ----------------------------------------------------------------------------

    def verify_webhook(self, headers, raw_body: bytes, now: datetime) -> str:
        return webhooks.verify_webhook(
            headers, raw_body, self.settings.get("webhook_secret") or "", now.timestamp()
        )

    def parse_webhook(self, raw_body: str) -> tuple[str, dict]:
        return webhooks.parse_event(raw_body.encode())

    def event_patient_id(self, data: dict) -> str | None:
        patient = data.get("PatientId")
        return str(patient) if patient not in (None, "") else None

    # Reads a person waits for ----------------------------------------------------------

    def search_pharmacies(
        self,
        *,
        name: str | None = None,
        city: str | None = None,
        state: str | None = None,
        zip_code: str | None = None,
        ncpdp_id: str | None = None,
        clinician_id: int | str | None = None,
        max_pages: int = 5,
    ) -> list[dict]:
        items = self.client.get_all(
            "api/pharmacies/search",
            clinician_id or self.admin_clinician_id,
            max_pages=max_pages,
            name=name,
            city=city,
            state=state,
            zip=zip_code,
            ncpdpId=ncpdp_id,
        )
        return [_pharmacy(item) for item in items]

    def search_drugs(
        self, name: str, *, clinician_id: int | str | None = None, max_pages: int = 5
    ) -> list[dict]:
        items = self.client.get_all(
            "api/medications/search",
            clinician_id or self.admin_clinician_id,
            max_pages=max_pages,
            name=name,
        )
        return [_drug(item) for item in items]

    def select_drug(
        self,
        *,
        dispensable_drug_id: int | str | None = None,
        ndc: str | None = None,
        rxcui: str | None = None,
        clinician_id: int | str | None = None,
    ) -> dict:
        if dispensable_drug_id is None and not ndc and not rxcui:
            raise ValueError("name the drug by its DoseSpot id, NDC or RxCUI")
        answer = self.client.get(
            "api/medications/select",
            clinician_id or self.admin_clinician_id,
            dispensableDrugId=dispensable_drug_id,
            nDC=ndc,
            rXCUI=rxcui,
        )
        return _drug(answer.get("Item") or {})

    def notification_counts(self, clinician_id: int | str) -> dict:
        answer = self.client.get("api/notifications/counts", clinician_id)
        return {
            "refill_requests": int(answer.get("RefillRequestsCount") or 0),
            "transaction_errors": int(answer.get("TransactionErrorsCount") or 0),
            "pending_prescriptions": int(answer.get("PendingPrescriptionsCount") or 0),
            "pending_rx_changes": int(answer.get("PendingRxChangeCount") or 0),
        }

    def pending_requests(self, kind: str, clinician_id: int | str) -> list[dict]:
        """The clinician's pending pharmacy requests of a kind ("renewal": DoseSpot's refill
        requests; "change": its RxChange requests), every page, in the portal's shape."""
        path = REQUEST_PATHS[kind] + ("/pending" if kind == "renewal" else "")
        items = self.client.get_all(path, clinician_id)
        found = [_pharmacy_request(kind, item) for item in items]
        return [item for item in found if item["request_id"] is not None]

    def clinician_registration_status(self, clinician_id: int | str) -> str:
        """ "Pending", "RegistrationSuccess", "IDPSuccess", "TFAActivatedSuccess", ..."""
        path = f"api/clinicians/{int(clinician_id)}/registrationStatus"
        item = self.client.get(path, clinician_id)
        status = item.get("Item")
        if isinstance(status, dict):
            status = status.get("RegistrationStatus")
        return str(status or "")

    def patient_prescriptions(
        self,
        clinician_id: int | str,
        dosespot_patient_id: int | str,
        start: date | None = None,
        end: date | None = None,
    ) -> list[dict]:
        """The patient's prescriptions written between ``start`` and ``end`` (default: the
        last year), with the status numbers as names and their FHIR reading."""
        end = end or _today() + timedelta(days=1)
        start = start or end - timedelta(days=366)
        items = self.client.get_all(
            f"api/patients/{int(dosespot_patient_id)}/prescriptions",
            clinician_id,
            startDate=start.isoformat(),
            endDate=end.isoformat(),
        )
        return [_prescription(item) for item in items]

    def chart_prescriptions(self, patient_id: str, since: date) -> list[dict]:
        """The patient's prescriptions in the portal's neutral shape (the chart's write-back),
        read as the admin clinician."""
        items = self.patient_prescriptions(self.admin_clinician_id, patient_id, start=since)
        return [_for_chart(item) for item in items if item["prescription_id"] is not None]

    # Writes ----------------------------------------------------------------------------

    def sync_patient(
        self,
        clinician_id: int | str,
        snapshot: dict,
        dosespot_patient_id: int | str | None = None,
        *,
        today: date | None = None,
    ) -> int:
        """Create or update the patient at DoseSpot; their DoseSpot id. Checks DoseSpot's data
        rules first and raises ``PatientNotReady`` (no call made) when they fail."""
        return self._sync_patient(clinician_id, snapshot, dosespot_patient_id, today)[0]

    def _sync_patient(self, clinician_id, snapshot, dosespot_patient_id, today):
        problems = patient_problems(snapshot, today or _today())
        if problems:
            raise PatientNotReady(problems)
        payload = patient_payload(snapshot)
        if dosespot_patient_id is None:
            dosespot_patient_id = self._find_patient(clinician_id, payload)
        if dosespot_patient_id is None:
            answer = self.client.post("api/patients", clinician_id, payload)
            return _int_id(answer.get("Id")), True
        answer = self.client.put(f"api/patients/{int(dosespot_patient_id)}", clinician_id, payload)
        return _int_id(answer.get("Id") or dosespot_patient_id), False

    def _find_patient(self, clinician_id, payload: dict) -> int | None:
        """The DoseSpot patient with this name, birth date and our MRN, made by an earlier try
        whose answer was lost (a create is not idempotent at DoseSpot either)."""
        mrn = payload.get("NonDoseSpotMedicalRecordNumber")
        if not mrn:
            return None
        born = date.fromisoformat(payload["DateOfBirth"])
        found = self.client.get_all(
            "api/patients/search",
            clinician_id,
            firstName=payload["FirstName"],
            lastName=payload["LastName"],
            dob=f"{born.month}/{born.day}/{born.year}",
        )
        same = [p for p in found if str(p.get("NonDoseSpotMedicalRecordNumber") or "") == mrn]
        ids = sorted(_int_id(p.get("PatientId")) for p in same)
        return ids[0] if ids else None

    def deliver(self, operation: str, payload: dict[str, Any], idempotency_key: str) -> dict:
        if operation == "sync_patient":
            patient_id, created = self._sync_patient(
                payload["clinician_id"],
                payload["patient"],
                payload.get("dosespot_patient_id"),
                None,
            )
            return {"dosespot_patient_id": patient_id, "created": created}
        if operation == "send_prescription":
            return self._send_prescription(payload, idempotency_key)
        if operation == "cancel_prescription":
            return self._cancel_prescription(payload)
        if operation in REQUEST_OPERATIONS:
            return self._answer_request(*REQUEST_OPERATIONS[operation], payload)
        if operation == "add_patient_pharmacy":
            return self._add_patient_pharmacy(payload)
        raise PermanentError(f"DoseSpot has no operation {operation!r}.")

    def _send_prescription(self, payload: dict, idempotency_key: str) -> dict:
        clinician_id = payload["clinician_id"]
        patient_id = payload.get("dosespot_patient_id")
        if patient_id is None:
            if not payload.get("patient"):
                raise PermanentError("No DoseSpot patient id and no patient to create.")
            patient_id, _ = self._sync_patient(clinician_id, payload["patient"], None, None)
        ours = str(payload.get("prescription_id") or idempotency_key)
        factors = None
        if payload["prescription"].get("schedule"):  # DEA schedule II-V: sendEpcs
            if self.epcs_factors is None:
                raise PermanentError("No EPCS credentials are available to send a controlled drug.")
            # Read before anything is created at the vendor: without them nothing could go.
            factors = self.epcs_factors(clinician_id)
        existing = self._prescription_carrying(clinician_id, patient_id, ours, payload)
        created = existing is None
        if existing is None:
            rx = self._with_drug_ids(clinician_id, payload["prescription"])
            body = _coded_prescription(rx, ours)
            answer = self.client.post(
                f"api/patients/{int(patient_id)}/prescriptions/coded", clinician_id, body
            )
            rx_id, status = _int_id(answer.get("Id")), "Entered"
        else:
            rx_id, status = existing["prescription_id"], existing["status"]
        result = {
            "dosespot_patient_id": int(patient_id),
            "dosespot_prescription_id": rx_id,
            "created": created,
            "sent": False,
            "status": status,
        }
        if status == "Deleted":
            raise PermanentError("The prescription was deleted at DoseSpot; it is not resent.")
        if status not in SENDABLE:  # an earlier try sent it: sending again would duplicate
            return result
        self._send(clinician_id, patient_id, rx_id, epcs=factors)
        return result | {"sent": True, "status": "Sending"}

    def _with_drug_ids(self, clinician_id, rx: dict) -> dict:
        """The prescription with DoseSpot's drug and dispense unit ids: a prescription
        composed from our catalog names its drug by RxCUI (or NDC) only, and unit ids are
        DoseSpot's own, read from the drug it selects, never assumed."""
        if rx.get("dispensable_drug_id") and rx.get("dispense_unit_id"):
            return rx
        if not (rx.get("dispensable_drug_id") or rx.get("ndc") or rx.get("rxcui")):
            raise PermanentError("The prescription names no drug DoseSpot can select.")
        try:
            drug = self.select_drug(
                dispensable_drug_id=rx.get("dispensable_drug_id"),
                ndc=None if rx.get("dispensable_drug_id") else rx.get("ndc"),
                rxcui=None if rx.get("dispensable_drug_id") else rx.get("rxcui"),
                clinician_id=clinician_id,
            )
        except DoseSpotRefused as refused:
            raise PermanentError(f"DoseSpot has no such drug to prescribe: {refused}") from None
        if not drug.get("dispensable_drug_id") or not drug.get("dispense_unit_id"):
            raise PermanentError("DoseSpot has no dispensable product for this drug.")
        return {
            **rx,
            "dispensable_drug_id": rx.get("dispensable_drug_id") or drug["dispensable_drug_id"],
            "dispense_unit_id": rx.get("dispense_unit_id") or drug["dispense_unit_id"],
        }

    def _prescription_carrying(self, clinician_id, patient_id, ours: str, payload) -> dict | None:
        end = _today() + timedelta(days=1)
        start = end - timedelta(days=SEND_LOOKBACK_DAYS)
        mine = [
            rx
            for rx in self.patient_prescriptions(clinician_id, patient_id, start, end)
            if rx["non_dosespot_prescription_id"] == ours
        ]
        # Two carrying our id would be an earlier fault; the first one made is the one kept.
        return min(mine, key=lambda rx: rx["prescription_id"]) if mine else None

    def _send(self, clinician_id, patient_id, rx_id: int, *, epcs=None) -> None:
        """``send``, or for a controlled substance (schedule II-V) ``sendEpcs`` with the
        prescriber's PIN and a one-time password derived for this delivery (``epcs``; never
        logged or returned)."""
        path, body = "send", {"PrescriptionIds": [rx_id]}
        if epcs is not None:
            pin, otp = epcs
            path, body = "sendEpcs", body | {"Pin": pin, "OTP": otp}
        try:
            answer = self.client.post(
                f"api/patients/{int(patient_id)}/prescriptions/{path}", clinician_id, body
            )
        except DoseSpotRefused as refused:
            raise DoseSpotRefused(
                f"DoseSpot created prescription {rx_id} but did not send it: {refused}",
                description=refused.description,
                result_code=refused.result_code,
            ) from refused
        for item in answer.get("Items") or []:
            result = item.get("Result") or {}
            if _int_id(item.get("Id")) == rx_id and str(result.get("ResultCode")).upper() != "OK":
                description = str(result.get("ResultDescription") or "")
                raise DoseSpotRefused(
                    f"DoseSpot did not send prescription {rx_id}.",
                    description=description,
                    result_code=str(result.get("ResultCode")),
                )

    def _add_patient_pharmacy(self, payload: dict) -> dict:
        """A patient's preferred pharmacy at DoseSpot (``SetAsPrimary`` makes it the one its
        screen offers first). Adding one already there is harmless, so a retry is too; a
        patient DoseSpot does not know yet is created first, as for a send."""
        clinician_id = payload["clinician_id"]
        patient_id = payload.get("dosespot_patient_id")
        if patient_id is None:
            if not payload.get("patient"):
                raise PermanentError("No DoseSpot patient id and no patient to create.")
            patient_id, _ = self._sync_patient(clinician_id, payload["patient"], None, None)
        pharmacy_id = _int_id(payload.get("pharmacy_id"))
        self.client.post(
            f"api/patients/{int(patient_id)}/pharmacies",
            clinician_id,
            {"PharmacyId": pharmacy_id, "SetAsPrimary": bool(payload.get("set_as_primary"))},
        )
        return {"dosespot_patient_id": int(patient_id), "pharmacy_id": pharmacy_id}

    def _cancel_prescription(self, payload: dict) -> dict:
        """Ask the pharmacy to cancel a transmitted prescription. A retried request whose
        first try got through finds the cancel already asked (or answered) and stops there:
        DoseSpot refuses a second request, which must not fail the message."""
        clinician_id = payload.get("clinician_id") or self.admin_clinician_id
        patient_id = int(payload["dosespot_patient_id"])
        rx_id = int(payload["dosespot_prescription_id"])
        try:
            self.client.post(
                f"api/patients/{patient_id}/prescriptions/{rx_id}/cancel",
                clinician_id,
                {"Comment": str(payload.get("comment") or "")[:CANCEL_COMMENT_MAX]},
            )
        except DoseSpotRefused:
            items = self.patient_prescriptions(clinician_id, patient_id)
            current = next((rx for rx in items if rx["prescription_id"] == rx_id), None)
            if current is None or current["medication_status"] not in CANCEL_ASKED:
                raise
            return {"dosespot_prescription_id": rx_id, "requested": False}
        return {"dosespot_prescription_id": rx_id, "requested": True}

    def _answer_request(self, kind: str, verb: str, payload: dict) -> dict:
        """Approve or deny one pharmacy request. A refusal of a request no longer pending is
        an earlier try that got through: done, not failed."""
        clinician_id = payload["clinician_id"]
        request_id = int(payload["request_id"])
        if verb == "approve":
            body = {
                "Refills": int(payload.get("refills") or 0),
                "Comment": str(payload.get("comment") or "")[:ANSWER_TEXT_MAX],
            }
        else:
            body = {
                "DenialReason": str(payload.get("denial_reason") or "other"),
                "Note": str(payload.get("note") or "")[:ANSWER_TEXT_MAX],
            }
        try:
            self.client.post(f"{REQUEST_PATHS[kind]}/{request_id}/{verb}", clinician_id, body)
        except DoseSpotRefused:
            pending = {item["request_id"] for item in self.pending_requests(kind, clinician_id)}
            if request_id in pending:
                raise
            answer = {"request_id": request_id, "answered": False}
        else:
            answer = {"request_id": request_id, "answered": True}
        if verb == "approve":
            answer["patient_prescriptions"] = self._after_approval(clinician_id, payload)
        return answer

    def _after_approval(self, clinician_id, payload: dict) -> list[dict] | None:
        """The patient's prescriptions written since the approval's day (the day before too:
        DoseSpot's dates may be the clinic's wall time), in the chart's shape; None
        without a patient to read or when the read fails (the approval went through: a
        failed read must not fail it, the write-back's next read looks again)."""
        patient_id = _optional_int(payload.get("dosespot_patient_id"))
        if patient_id is None:
            return None
        try:
            approved = datetime.fromisoformat(str(payload.get("approved_at"))).date()
        except ValueError:
            approved = _today()
        try:
            items = self.patient_prescriptions(
                clinician_id, patient_id, start=approved - timedelta(days=1)
            )
        except IntegrationError:
            return None
        found = [_for_chart(item) for item in items if item["prescription_id"] is not None]
        # Kept in the outbox's JSON: the day as ISO text.
        return [
            chart | {"written_on": chart["written_on"] and chart["written_on"].isoformat()}
            for chart in found
        ]


# Shapes ----------------------------------------------------------------------------------


def _int_id(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TransientError("DoseSpot answered without an id.") from None


def _optional_int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _coded_prescription(rx: dict, ours: str) -> dict:
    body: dict[str, Any] = {
        "DispensableDrugId": int(rx["dispensable_drug_id"]),
        "DispenseUnitId": int(rx["dispense_unit_id"]),
        "Quantity": str(rx["quantity"]),
        "Refills": int(rx.get("refills") or 0),
        "Directions": str(rx["directions"]),
        "Status": PRESCRIPTION_STATUS["Entered"],
        "NoSubstitutions": bool(rx.get("no_substitutions")),
        "NonDoseSpotPrescriptionId": ours,
    }
    optional = {
        "DaysSupply": _optional_int(rx.get("days_supply")),
        "PharmacyId": _optional_int(rx.get("pharmacy_id")),
        "PharmacyNotes": rx.get("pharmacy_notes") or None,
        "EffectiveDate": rx.get("effective_date") or None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    diagnoses = [
        {"Code": d["code"], "Description": d.get("description") or ""}
        for d in (rx.get("diagnoses") or [])[:2]
    ]
    if diagnoses:
        body["Diagnoses"] = diagnoses
    return body


def _prescription(item: dict) -> dict:
    status = prescription_status_name(item.get("Status"))
    medication = medication_status_name(item.get("MedicationStatus"))
    fhir, alert = fhir_status(status, medication)
    return {
        "prescription_id": _optional_int(item.get("PrescriptionId")),
        "status": status,
        "status_code": _optional_int(item.get("Status")),
        "medication_status": medication,
        "medication_status_code": _optional_int(item.get("MedicationStatus")),
        "fhir_status": fhir,
        "needs_attention": alert,
        "display_name": item.get("DisplayName"),
        "dispensable_drug_id": _optional_int(item.get("DispensableDrugId")),
        "rxcui": item.get("RxCUI"),
        "ndc": item.get("NDC"),
        "quantity": item.get("Quantity"),
        "dispense_unit_id": _optional_int(item.get("DispenseUnitId")),
        "refills": item.get("Refills"),
        "days_supply": _optional_int(item.get("DaysSupply")),
        "directions": item.get("Directions"),
        "pharmacy_id": _optional_int(item.get("PharmacyId")),
        "prescriber_id": _optional_int(item.get("PrescriberId")),
        "written_date": item.get("WrittenDate"),
        "effective_date": item.get("EffectiveDate"),
        "last_fill_date": item.get("LastFillDate"),
        "no_substitutions": bool(item.get("NoSubstitutions")),
        "pharmacy_notes": item.get("PharmacyNotes"),
        "non_dosespot_prescription_id": item.get("NonDoseSpotPrescriptionId"),
        "error_details": item.get("ErrorDetails"),
    }


def _pharmacy_request(kind: str, item: dict) -> dict:
    """A renewal or change request in the portal's shape (ids as text, as ExternalId keeps
    them; the pharmacy's words as they came)."""

    def text_id(value):
        number = _optional_int(value)
        return str(number) if number is not None else None

    raw_type = item.get("RxChangeType") or item.get("ChangeType") or item.get("RequestType")
    change_type = None
    if kind == "change":
        key = "".join(ch for ch in str(raw_type or "").lower() if ch.isalnum())
        change_type = CHANGE_TYPES.get(key, "other")
    return {
        "request_id": _optional_int(item.get("RequestId") or item.get("Id")),
        "kind": kind,
        "change_type": change_type,
        "clinician_id": text_id(item.get("ClinicianId") or item.get("PrescriberId")),
        "patient_id": text_id(item.get("PatientId")),
        "prescription_id": text_id(item.get("PrescriptionId")),
        "ours": item.get("NonDoseSpotPrescriptionId") or None,
        "pharmacy_id": text_id(item.get("PharmacyId")),
        "drug": str(item.get("DisplayName") or item.get("RequestedDrug") or "Unnamed drug"),
        "details": str(item.get("Details") or item.get("Comments") or "") or None,
        "requested_at": item.get("RequestedDate"),
    }


def _for_chart(item: dict) -> dict:
    written = item.get("written_date")
    return {
        "vendor_id": str(item["prescription_id"]),
        "drug": item.get("display_name") or "Unnamed drug",
        "rxcui": item.get("rxcui") or None,
        "ndc": item.get("ndc") or None,
        "dispensable_drug_id": (
            str(item["dispensable_drug_id"]) if item.get("dispensable_drug_id") else None
        ),
        "quantity": str(item["quantity"]) if item.get("quantity") is not None else None,
        "refills": str(item["refills"]) if item.get("refills") is not None else None,
        "days_supply": item.get("days_supply"),
        "directions": item.get("directions"),
        "status": item.get("status") or "Unknown",
        "medication_status": item.get("medication_status"),
        "fhir_status": item.get("fhir_status") or "unknown",
        "written_on": _date_of(written),
        # As DoseSpot gave it (with its time): an approval's prescription is found by it.
        "written_at": str(written)[:40] if written else None,
        "prescriber_vendor_id": str(item["prescriber_id"]) if item.get("prescriber_id") else None,
        # The pharmacy it was written to: an approval's prescription is at the request's.
        "pharmacy_id": str(item["pharmacy_id"]) if item.get("pharmacy_id") else None,
        # Our id, for a prescription composed and sent from the portal; and the vendor's reason
        # for a failed transmission, in its words.
        "ours": item.get("non_dosespot_prescription_id") or None,
        "error_details": item.get("error_details") or None,
        # The pharmacy's last fill as DoseSpot gave it (a new value is a new fill).
        "last_fill": str(item["last_fill_date"]) if item.get("last_fill_date") else None,
    }


def _date_of(value: Any) -> date | None:
    """DoseSpot's dates come as ISO date-times ("2026-12-06T14:03:00"); the day is kept."""
    if not value:
        return None
    try:
        return bounded(date.fromisoformat(str(value)[:10]))
    except ValueError:
        return None


def _pharmacy(item: dict) -> dict:
    level = _optional_int(item.get("ServiceLevel")) or 0
    return {
        "pharmacy_id": _optional_int(item.get("PharmacyId")),
        "name": item.get("StoreName"),
        "address_line1": item.get("Address1"),
        "address_line2": item.get("Address2"),
        "city": item.get("City"),
        "state": item.get("State"),
        "postal_code": item.get("ZipCode"),
        "phone": item.get("PrimaryPhone"),
        "fax": item.get("PrimaryFax"),
        "ncpdp_id": item.get("NCPDPID"),
        "services": [name for name, bit in PHARMACY_SERVICES.items() if level & bit],
    }


def _drug(item: dict) -> dict:
    return {
        "dispensable_drug_id": _optional_int(item.get("DispensableDrugId")),
        "display_name": item.get("DisplayName"),
        "ndc": item.get("NDC"),
        "rxcui": item.get("RxCUI"),
        "strength": item.get("Strength"),
        "dose_form": item.get("DoseForm"),
        "route": item.get("Route"),
        "dispense_unit_id": _optional_int(item.get("DispenseUnitId")),
        "schedule": item.get("Schedule"),
        "controlled": bool(item.get("Schedule")),
    }

"""What happens to a prescription after it is sent, cancelled or filled, and the webhook
each change emits (DOSESPOT.md section 5, "Lifecycle").

send -> Sending, then after ``delay`` eRxSent (or Error, for a pharmacy that fails
transmission), then after another ``delay`` PharmacyVerified. cancel -> CancelRequested,
then after ``delay`` Cancelled (or CancelDenied, for a pharmacy that denies cancels).
The control API can push a prescription to any state at any time.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import pyotp

from portal.integrations.sandbox.dosespot.records import now_iso
from portal.integrations.sandbox.dosespot.state import (
    MEDICATION_STATUS as MED,
)
from portal.integrations.sandbox.dosespot.state import (
    PRESCRIPTION_STATUS as RX,
)
from portal.integrations.sandbox.dosespot.state import (
    SandboxState,
)
from portal.integrations.sandbox.dosespot.timers import Timer
from portal.integrations.sandbox.dosespot.webhooks import WebhookSender

SENDABLE = (RX["Entered"], RX["Edited"], RX["ReadyToSign"], RX["EpcsSigned"])
TRANSMITTED = (RX["eRxSent"], RX["PharmacyVerified"])
REGISTRATION_EVENTS = {
    "RegistrationSuccess": "ClinicianConfirmed",
    "IDPSuccess": "ClinicianIDPCompleteSuccess",
    "TFAActivatedSuccess": "ClinicianTfaActivateSuccess",
    "LockedOut": "ClinicianLockedOut",
}


@dataclass
class Outcome:
    prescription_id: int
    ok: bool
    description: str = ""


class Lifecycle:
    def __init__(
        self,
        state: SandboxState,
        webhooks: WebhookSender,
        delay: float,
        *,
        demo_renewal: bool = False,
    ):
        self.state = state
        self.webhooks = webhooks
        self.delay = delay
        self.timer = Timer("sandbox-lifecycle")
        # [sandbox] The demo's renewal request: the first prescription the portal sends that
        # reaches the pharmacy is asked to be renewed, once per start.
        self.demo_renewal = demo_renewal

    def stop(self) -> None:
        self.timer.stop()

    def reset(self) -> None:
        self.timer.clear()

    # Sending ---------------------------------------------------------------------------

    def send(
        self, patient_id: int, prescription_ids: list, clinician: dict, *, epcs: bool = False
    ) -> list[Outcome]:
        """Start transmitting each prescription; one outcome per id, as DoseSpot answers."""
        outcomes = []
        with self.state.lock:
            for raw_id in prescription_ids:
                outcomes.append(self._start_sending(patient_id, raw_id, clinician, epcs))
        return outcomes

    @staticmethod
    def epcs_factors_ok(clinician: dict, pin, otp) -> bool:
        """[sandbox] The PIN and one-time password a ``sendEpcs`` carries, against the ones
        the clinician registered (fixtures ``EpcsPin``, ``EpcsOtpSecret``: a TOTP seed; the
        code of the current 30-second step or the one before or after is accepted)."""
        secret = clinician.get("EpcsOtpSecret")
        if not (secret and pin and otp) or not hmac.compare_digest(
            str(pin), str(clinician.get("EpcsPin") or "")
        ):
            return False
        return pyotp.TOTP(secret).verify(str(otp), valid_window=1)

    def _start_sending(self, patient_id: int, raw_id, clinician: dict, epcs: bool) -> Outcome:
        try:
            rx_id = int(raw_id)
        except (TypeError, ValueError):
            return Outcome(0, False, f"{raw_id!r} is not a prescription id.")
        rx = self.state.store.prescriptions.get(rx_id)
        if rx is None or rx["PatientId"] != patient_id:
            return Outcome(rx_id, False, "No such prescription for this patient.")
        if rx["Status"] not in SENDABLE:
            return Outcome(rx_id, False, "Only a pending prescription can be sent.")
        if rx["PharmacyId"] is None:
            return Outcome(rx_id, False, "Choose a pharmacy before sending.")
        if rx["Schedule"] and not epcs:
            return Outcome(rx_id, False, "A controlled substance is sent with sendEpcs.")
        if rx["Schedule"] and not clinician.get("EpcsEnabled"):
            return Outcome(rx_id, False, "The prescriber is not enabled for EPCS.")
        rx["PrescriberId"] = clinician["ClinicianId"]
        self._transmit(rx)
        return Outcome(rx_id, True)

    def _transmit(self, rx: dict) -> None:
        """Sending now, then eRxSent (or Error) and PharmacyVerified, each with its webhook."""
        self._set_status(rx, RX["Sending"], "Transmission started.")
        store, rx_id = self.state.store, rx["PrescriptionId"]
        self.timer.call_later(self.delay, lambda: self._transmitted(store, rx_id))

    def _transmitted(self, store, rx_id: int) -> None:
        with self.state.lock:
            rx = self._current(store, rx_id)
            if rx is None or rx["Status"] != RX["Sending"]:
                return
            pharmacy = store.pharmacies.get(rx["PharmacyId"]) or {}
            if pharmacy.get("FailsTransmission"):
                reason = f"{pharmacy.get('StoreName', 'The pharmacy')} did not accept the message."
                rx["ErrorDetails"] = reason
                self._set_status(rx, RX["Error"], reason)
                store.transmission_errors.append(
                    {
                        "PrescriptionId": rx_id,
                        "PatientId": rx["PatientId"],
                        "ClinicianId": rx["PrescriberId"],
                        "ErrorDetails": reason,
                        "ErrorDateTime": now_iso(),
                    }
                )
                self.emit_counts(rx["PrescriberId"])
                return
            self._set_status(rx, RX["eRxSent"], "Sent to the pharmacy.")
        self.timer.call_later(self.delay, lambda: self._verified(store, rx_id))

    def _verified(self, store, rx_id: int) -> None:
        with self.state.lock:
            rx = self._current(store, rx_id)
            if rx is not None and rx["Status"] == RX["eRxSent"]:
                self._set_status(rx, RX["PharmacyVerified"], "The pharmacy confirmed receipt.")
                if self.demo_renewal and rx.get("NonDoseSpotPrescriptionId"):
                    self.demo_renewal = False
                    self.pharmacy_request(
                        "refill_requests", rx, "The patient asks for a renewal (demo)."
                    )

    # Cancelling and filling --------------------------------------------------------------

    def cancel(self, rx: dict, comment: str) -> str | None:
        """Ask the pharmacy to cancel; None, or why it cannot be asked."""
        with self.state.lock:
            if rx["Status"] not in TRANSMITTED:
                return "Only a transmitted prescription can be cancelled."
            if rx["MedicationStatus"] in (MED["CancelRequested"], MED["Cancelled"]):
                return "A cancel was already requested."
            self._set_medication_status(rx, MED["CancelRequested"], comment or "")
            pharmacy = self.state.store.pharmacies.get(rx["PharmacyId"]) or {}
            approved = not pharmacy.get("DeniesCancel")
            store = self.state.store
            rx_id = rx["PrescriptionId"]
        self.timer.call_later(
            self.delay, lambda: self._cancel_answer(store, rx_id, approved, automatic=True)
        )
        return None

    def _cancel_answer(self, store, rx_id: int, approved: bool, automatic: bool) -> None:
        with self.state.lock:
            rx = self._current(store, rx_id)
            if rx is None or (automatic and rx["MedicationStatus"] != MED["CancelRequested"]):
                return
            self.answer_cancel(rx, approved)

    def answer_cancel(self, rx: dict, approved: bool) -> None:
        with self.state.lock:
            if approved:
                rx["DateInactive"] = now_iso()
                self._set_medication_status(rx, MED["Cancelled"], "The pharmacy cancelled it.")
            else:
                self._set_medication_status(
                    rx, MED["CancelDenied"], "The pharmacy has already dispensed it."
                )

    def fill(self, rx: dict, kind: str) -> None:
        """A pharmacy fill notice: FullFill, PartialFill or NoFill."""
        with self.state.lock:
            if kind in ("FullFill", "PartialFill"):
                rx["LastFillDate"] = now_iso()
            self._set_medication_status(rx, MED[kind], f"Pharmacy reported {kind}.")

    # Any state, for the control API -----------------------------------------------------

    def force(self, rx: dict, status: int | None, medication_status: int | None) -> None:
        with self.state.lock:
            if status is not None:
                self._set_status(rx, status, "Set through the sandbox control API.")
            if medication_status is not None:
                self._set_medication_status(
                    rx, medication_status, "Set through the sandbox control API."
                )

    def set_registration(self, clinician: dict, status: str) -> None:
        with self.state.lock:
            clinician["RegistrationStatus"] = status
        event = REGISTRATION_EVENTS.get(status)
        if event:
            self.webhooks.emit(
                event,
                {
                    "ClinicId": clinician["ClinicId"],
                    "ClinicianId": clinician["ClinicianId"],
                    "RegistrationStatus": status,
                    "StatusDateTime": now_iso(),
                },
            )

    # Pharmacy requests ----------------------------------------------------------------------

    def pharmacy_request(
        self, table: str, rx: dict, details: str, change_type: str | None = None
    ) -> dict:
        """A pharmacy asks for a renewal (``refill_requests``) or a change
        (``rx_change_requests``, of ``change_type``) of ``rx``; the prescriber's counts
        event follows."""
        with self.state.lock:
            request_id = self.state.new_id()
            entry = {
                "RequestId": request_id,
                "PrescriptionId": rx["PrescriptionId"],
                "PatientId": rx["PatientId"],
                "ClinicianId": rx["PrescriberId"],
                "PharmacyId": rx["PharmacyId"],
                "DisplayName": rx["DisplayName"],
                "NonDoseSpotPrescriptionId": rx.get("NonDoseSpotPrescriptionId"),
                "RequestedDate": now_iso(),
                "Status": "Pending",
                "Details": details,
            }
            if table == "rx_change_requests":
                entry["RxChangeType"] = change_type
            getattr(self.state.store, table)[request_id] = entry
        self.emit_counts(rx["PrescriberId"])
        return entry

    def approve_request(self, request: dict, clinician: dict, refills: int) -> dict | None:
        """An approved renewal or change request: DoseSpot writes a NEW prescription at the
        pharmacy (the original's drug, directions, quantity, unit, days' supply and
        pharmacy; the approval's refills; written now; no NonDoseSpotPrescriptionId, so the
        client never learns its id from the approval) and transmits it like a sent one.
        Returns it (None when the original is gone, e.g. after a reset)."""
        with self.state.lock:
            original = self.state.store.prescriptions.get(request["PrescriptionId"])
            if original is None:
                return None
            rx_id = self.state.new_id()
            written = now_iso()
            rx = {
                **original,
                "PrescriptionId": rx_id,
                "Status": RX["Entered"],
                "MedicationStatus": MED["Active"],
                "Refills": str(int(refills)),
                "PharmacyId": request.get("PharmacyId") or original["PharmacyId"],
                "PrescriberId": clinician["ClinicianId"],
                "WrittenDate": written,
                "EffectiveDate": written[:10],
                "LastFillDate": None,
                "DateInactive": None,
                "NonDoseSpotPrescriptionId": None,
                "ErrorDetails": None,
            }
            self.state.store.prescriptions[rx_id] = rx
            # [sandbox] For tests: which prescription the approval made.
            request["NewPrescriptionId"] = rx_id
            self._transmit(rx)
        return rx

    # Shared ---------------------------------------------------------------------------------

    def counts(self, clinician_id: int) -> dict:
        store = self.state.store
        with self.state.lock:
            mine = [rx for rx in store.prescriptions.values() if rx["PrescriberId"] == clinician_id]
            return {
                "RefillRequestsCount": sum(
                    1 for r in store.refill_requests.values() if r["ClinicianId"] == clinician_id
                ),
                "TransactionErrorsCount": sum(
                    1 for e in store.transmission_errors if e["ClinicianId"] == clinician_id
                ),
                "PendingPrescriptionsCount": sum(
                    1 for rx in mine if rx["Status"] in (RX["Entered"], RX["ReadyToSign"])
                ),
                "PendingRxChangeCount": sum(
                    1 for r in store.rx_change_requests.values() if r["ClinicianId"] == clinician_id
                ),
            }

    def emit_counts(self, clinician_id: int) -> None:
        clinician = self.state.clinician_by_id(clinician_id) or {}
        self.webhooks.emit(
            "PrescriberNotificationCounts",
            {
                "ClinicId": clinician.get("ClinicId"),
                "ClinicianId": clinician_id,
                "Total": self.counts(clinician_id),
            },
        )

    def _current(self, store, rx_id: int) -> dict | None:
        """The prescription, unless the sandbox was reset since the step was scheduled."""
        if store is not self.state.store:
            return None
        return store.prescriptions.get(rx_id)

    def _base(self, rx: dict) -> dict:
        patient = self.state.store.patients.get(rx["PatientId"]) or {}
        return {
            "PatientId": rx["PatientId"],
            "ClinicId": patient.get("ClinicId"),
            "ClinicianId": rx["PrescriberId"],
            "PrescriptionId": rx["PrescriptionId"],
            "StatusDateTime": now_iso(),
        }

    def _set_status(self, rx: dict, status: int, details: str) -> None:
        rx["Status"] = status
        data = self._base(rx) | {"PrescriptionStatus": status, "StatusDetails": details}
        self.webhooks.emit("PrescriptionResult", data)

    def _set_medication_status(self, rx: dict, status: int, details: str) -> None:
        rx["MedicationStatus"] = status
        data = self._base(rx) | {"MedicationStatus": status, "StatusDetails": details}
        self.webhooks.emit("MedicationStatusUpdate", data)

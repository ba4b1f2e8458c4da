"""Prescriptions, whatever the path they were written by (the portal's own screens or the
vendor's embedded one), and a prescriber's favourites."""

from __future__ import annotations

import re
from datetime import date, datetime

from sqlalchemy import Boolean, ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.prescriptions import states
from portal.timeutil import UTCDateTime, utcnow


class Prescription(db.Model):
    """One prescription written at the vendor (its embedded screen, or sent from here), with
    the vendor's statuses as last read. Unique by the vendor's id: a webhook, a sweep and a
    resent event all land on the same row.

    ``status`` is the vendor's transmission status by name (e.g. "PharmacyVerified"),
    ``medication_status`` its pharmacy-side status ("Active", "Cancelled"...), ``fhir_status``
    the FHIR MedicationRequest status they map to. ``medication_id`` is the chart's
    medication list entry made for it, once.

    ``origin`` says which path wrote it: ``vendor`` (the vendor's embedded screen; the vendor's
    read writes every element) or ``portal`` (composed here: a draft until signed; once
    ``signed_at`` is set, database triggers refuse any change to what was signed, and
    ``digest`` is the SHA-256 of the signed content; only the transmission and pharmacy
    statuses, the vendor's id, the error, the printing and the medication link move after).
    ``state`` is the one state machine of ``portal.prescriptions.states`` for both paths.
    """

    __tablename__ = "prescriptions"
    __table_args__ = (
        UniqueConstraint("connector", "vendor_id", name="uq_prescriptions_vendor"),
        Index("ix_prescriptions_patient", "patient_id", "written_on"),
        Index("ix_prescriptions_encounter", "encounter_id"),
        # A prescriber's drafts and prescriptions by state (the Rx inbox, open drafts).
        Index("ix_prescriptions_prescriber_state", "prescriber_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    # Both empty until the vendor holds the prescription (a draft, or one printed without a
    # connector); unique together once set.
    connector: Mapped[str | None] = mapped_column(String(64))
    vendor_id: Mapped[str | None] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16), default="vendor", server_default="vendor")
    state: Mapped[str] = mapped_column(String(32), default=states.DRAFT, server_default="sent")
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"))
    prescriber_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    drug: Mapped[str] = mapped_column(String(300))
    rxcui: Mapped[str | None] = mapped_column(String(16))
    ndc: Mapped[str | None] = mapped_column(String(16))
    quantity: Mapped[str | None] = mapped_column(String(32))
    refills: Mapped[str | None] = mapped_column(String(16))
    days_supply: Mapped[int | None]
    directions: Mapped[str | None] = mapped_column(String(1000))
    # The vendor's transmission status by name; empty until the vendor has the prescription.
    status: Mapped[str | None] = mapped_column(String(32))
    medication_status: Mapped[str | None] = mapped_column(String(32))
    fhir_status: Mapped[str] = mapped_column(String(32))
    written_on: Mapped[date | None]
    medication_id: Mapped[int | None] = mapped_column(ForeignKey("medications.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # --- composed in the portal (empty for the vendor path unless the vendor's read says) ---
    # The drug as the catalog or the vendor's search gave it; the vendor's id is needed to
    # send. The ingredients (comma-separated RxCUIs) let the safety checks count an open
    # prescription as active without the catalog.
    dispensable_drug_id: Mapped[str | None] = mapped_column(String(32))
    strength: Mapped[str | None] = mapped_column(String(100))
    dose_form: Mapped[str | None] = mapped_column(String(100))
    route: Mapped[str | None] = mapped_column(String(64))
    schedule: Mapped[int | None] = mapped_column(SmallInteger)  # DEA schedule 2..5
    ingredient_rxcuis: Mapped[str | None] = mapped_column(String(300))
    # The SIG builder's fields (JSON), so a draft, a renewal or a favourite reopens them.
    sig: Mapped[str | None] = mapped_column(Text)
    dispense_unit: Mapped[str | None] = mapped_column(String(32))
    substitution_allowed: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=sa_true()
    )
    pharmacist_note: Mapped[str | None] = mapped_column(String(210))
    effective_on: Mapped[date | None]
    # Up to two ICD-10-CM diagnoses from the problem list: JSON [{"code", "description"}].
    diagnoses: Mapped[str | None] = mapped_column(Text)
    # The vendor's pharmacy id and the name shown; not part of what is signed: after a failed
    # transmission the prescriber may send it to another pharmacy (audited).
    pharmacy_id: Mapped[str | None] = mapped_column(String(32))
    pharmacy_name: Mapped[str | None] = mapped_column(String(300))
    # The safety checks' alerts at signing and the prescriber's overrides: JSON lists.
    alerts: Mapped[str | None] = mapped_column(Text)
    overrides: Mapped[str | None] = mapped_column(Text)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    digest: Mapped[str | None] = mapped_column(String(64))
    # The vendor's reason for a failed transmission, in its words.
    transmission_error: Mapped[str | None] = mapped_column(Text)
    printed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    print_reason: Mapped[str | None] = mapped_column(String(200))
    # The pharmacy's fills, from the vendor's reads: the vendor's LastFillDate as it gave it
    # (a new value is a new fill) and the fills counted so far (refills left = refills
    # authorised - fills after the first).
    last_fill_reported: Mapped[str | None] = mapped_column(String(40))
    last_filled_on: Mapped[date | None]
    fills: Mapped[int] = mapped_column(default=0, server_default="0")
    # Optimistic locking of drafts: two tabs autosaving the same draft conflict in words.
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    # The prescription this one renews ("Renew", or the approval of a pharmacy's request),
    # kept through signing (migration 0030): while it is the same product, the safety checks
    # leave the renewed one (and the medication-list entry standing for it) out, and signing
    # links to that entry rather than listing the drug twice (``portal.prescriptions.renewals``).
    # Not part of what is signed: it says where the draft came from, not what the pharmacy fills.
    renews_prescription_id: Mapped[int | None] = mapped_column(
        ForeignKey("prescriptions.id"), index=True
    )

    @property
    def refills_left(self) -> int | None:
        """Refills the pharmacy may still dispense: those authorised less the fills after the
        first (None when the number authorised is not known)."""
        try:
            authorised = int(float(self.refills)) if self.refills not in (None, "") else None
        except ValueError:
            return None
        if authorised is None:
            return None
        return max(0, authorised - max(0, (self.fills or 0) - 1))

    @property
    def status_label(self) -> str:
        return words_of(self.status) if self.status else states.label(self.state)

    @property
    def state_label(self) -> str:
        return states.label(self.state)

    @property
    def state_tone(self) -> str:
        return states.tone(self.state)

    @property
    def medication_status_label(self) -> str | None:
        return words_of(self.medication_status) if self.medication_status else None


def words_of(vendor_name: str) -> str:
    """A vendor's status name as words: "PharmacyVerified" -> "Pharmacy verified",
    "eRxSent" -> "eRx sent"."""
    words = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", vendor_name)
    if vendor_name.startswith("eRx"):
        return "eRx " + " ".join(word.lower() for word in words[2:])
    text = " ".join(words)
    text = text[:1].upper() + text[1:].lower() if text else vendor_name
    return text.replace("Epcs", "EPCS")


class PrescriptionFavorite(db.Model):
    """A prescriber's saved drug with its directions, quantity and refills, reused in one
    click (the drug and the SIG are copied into a new draft; nothing else is)."""

    __tablename__ = "prescription_favorites"
    __table_args__ = (
        UniqueConstraint("owner_id", "label", name="uq_prescription_favorites_label"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str] = mapped_column(String(120))
    rxcui: Mapped[str | None] = mapped_column(String(16))
    dispensable_drug_id: Mapped[str | None] = mapped_column(String(32))
    drug: Mapped[str] = mapped_column(String(300))
    sig: Mapped[str | None] = mapped_column(Text)
    directions: Mapped[str | None] = mapped_column(String(1000))
    quantity: Mapped[str | None] = mapped_column(String(32))
    dispense_unit: Mapped[str | None] = mapped_column(String(32))
    days_supply: Mapped[int | None]
    refills: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RxRequest(db.Model):
    """A pharmacy's request to a prescriber, pulled from the e-prescribing vendor: a renewal
    (the vendor's "refill request") or a change (generic or therapeutic substitution, prior
    authorisation, clarification). Unique by the vendor's request id: a webhook, the poll and
    a resent list all land on the same row.

    Matched when pulled: ``prescriber_id`` by the vendor's clinician id, ``patient_id`` by the
    vendor's patient id, ``prescription_id`` (the original) by the vendor's prescription id or
    our own id the vendor carries (``NonDoseSpotPrescriptionId``). An unmatched request keeps
    the vendor's ids and is still listed for its prescriber (or nobody, without one).

    ``state``: ``pending`` until the prescriber answers; ``approved`` once the answering
    prescription is signed (``response_prescription_id``: a portal prescription made from the
    original, signed through the same checks and factors, immutable like any signed one) and
    the approval is in the outbox; ``denied`` once the denial (a reason code from
    ``DENIAL_REASONS`` and a note) is in the outbox; ``closed`` when the vendor no longer
    lists it as pending and nobody answered it here (answered in the vendor's own screen, or
    withdrawn). ``vendor_answer`` is the outbox's word on the answer: queued, delivered,
    failed. An approval makes a new prescription at the vendor whose id is not given back:
    the answering prescription is linked to it (``vendor_id``) only when exactly one of the
    patient's prescriptions there fits; until then ``vendor_link_note`` says why not.
    """

    __tablename__ = "rx_requests"
    __table_args__ = (
        UniqueConstraint("connector", "vendor_request_id", name="uq_rx_requests_vendor"),
        UniqueConstraint("response_prescription_id", name="uq_rx_requests_response"),
        Index("ix_rx_requests_prescriber_state", "prescriber_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    vendor_request_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "renewal" or "change"
    change_type: Mapped[str | None] = mapped_column(String(32))
    clinician_vendor_id: Mapped[str | None] = mapped_column(String(64))
    prescriber_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    patient_vendor_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    vendor_prescription_id: Mapped[str | None] = mapped_column(String(64))
    prescription_id: Mapped[int | None] = mapped_column(ForeignKey("prescriptions.id"))
    pharmacy_id: Mapped[str | None] = mapped_column(String(32))
    drug: Mapped[str] = mapped_column(String(300))
    # The pharmacy's own words (shown escaped, never trusted).
    details: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    refills: Mapped[int | None] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(String(250))
    denial_reason: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(String(250))
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A draft discarded before it was signed leaves the request pending, unlinked.
    response_prescription_id: Mapped[int | None] = mapped_column(
        ForeignKey("prescriptions.id", ondelete="SET NULL")
    )
    vendor_answer: Mapped[str | None] = mapped_column(String(16))
    vendor_error: Mapped[str | None] = mapped_column(Text)
    # Why the prescription the vendor made from this approval is not linked to the answering
    # prescription yet (none found, or several that fit: never guessed); None once linked
    # (``prescriptions.approvals``; migration 0029).
    vendor_link_note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RxAcknowledgement(db.Model):
    """A prescriber's "seen" of a pharmacy's answer to a cancel (cancelled or cancel denied):
    the Rx inbox lists a prescription in one of those states until its prescriber has
    acknowledged that state (a cancel denied, asked again and then cancelled, comes back)."""

    __tablename__ = "rx_acknowledgements"
    __table_args__ = (
        UniqueConstraint("prescription_id", "state", name="uq_rx_acknowledgements_state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prescription_id: Mapped[int] = mapped_column(ForeignKey("prescriptions.id"))
    state: Mapped[str] = mapped_column(String(32))
    acknowledged_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    acknowledged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PatientPharmacy(db.Model):
    """A pharmacy the patient prefers (the vendor's pharmacy id and what it is called),
    offered first in the compose screen's pharmacy picker; ``is_primary`` marks the one
    chosen by default. Synced to the vendor (``POST /api/patients/{id}/pharmacies``) through
    the outbox when it is added; ``synced_at`` says when the vendor acknowledged it."""

    __tablename__ = "patient_pharmacies"
    __table_args__ = (
        UniqueConstraint(
            "patient_id", "connector", "pharmacy_id", name="uq_patient_pharmacies_pharmacy"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    connector: Mapped[str] = mapped_column(String(64))
    pharmacy_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(300))
    address: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(32))
    epcs: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    is_primary: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

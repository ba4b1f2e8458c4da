"""A prescription as the e-prescribing vendor knows it, kept in the chart."""

from __future__ import annotations

import re
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import UTCDateTime, utcnow


class Prescription(db.Model):
    """One prescription written at the vendor (its embedded screen, or sent from here), with
    the vendor's statuses as last read. Unique by the vendor's id: a webhook, a sweep and a
    resent event all land on the same row.

    ``status`` is the vendor's transmission status by name (e.g. "PharmacyVerified"),
    ``medication_status`` its pharmacy-side status ("Active", "Cancelled"...), ``fhir_status``
    the FHIR MedicationRequest status they map to. ``medication_id`` is the chart's
    medication list entry made for it, once.
    """

    __tablename__ = "prescriptions"
    __table_args__ = (
        UniqueConstraint("connector", "vendor_id", name="uq_prescriptions_vendor"),
        Index("ix_prescriptions_patient", "patient_id", "written_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    connector: Mapped[str] = mapped_column(String(64))
    vendor_id: Mapped[str] = mapped_column(String(64))
    prescriber_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    drug: Mapped[str] = mapped_column(String(300))
    rxcui: Mapped[str | None] = mapped_column(String(16))
    ndc: Mapped[str | None] = mapped_column(String(16))
    quantity: Mapped[str | None] = mapped_column(String(32))
    refills: Mapped[str | None] = mapped_column(String(16))
    days_supply: Mapped[int | None]
    directions: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(32))
    medication_status: Mapped[str | None] = mapped_column(String(32))
    fhir_status: Mapped[str] = mapped_column(String(32))
    written_on: Mapped[date | None]
    medication_id: Mapped[int | None] = mapped_column(ForeignKey("medications.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def status_label(self) -> str:
        return words_of(self.status)

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

"""The clinic (one per installation) and its locations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import UTCDateTime, utcnow


class Clinic(db.Model):
    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(32))
    time_zone: Mapped[str] = mapped_column(String(64), default="America/New_York")
    # Providers' calendar feeds leave the portal: they name patients only if the clinic says so.
    calendar_feed_shows_names: Mapped[bool] = mapped_column(default=False)
    # The units vital signs are typed and shown in (they are stored in UCUM canonical units).
    temperature_unit: Mapped[str] = mapped_column(String(8), default="[degF]")  # or "Cel"
    weight_unit: Mapped[str] = mapped_column(String(8), default="[lb_av]")  # or "kg"
    length_unit: Mapped[str] = mapped_column(String(8), default="[in_i]")  # or "cm"
    # How staff type dates: "mdy" (02/03/1980 is 3 February, as in the US) or "dmy" (it is
    # 2 March, as in most of the world). Dates are always shown unambiguously (3 Feb 1980).
    date_order: Mapped[str] = mapped_column(String(3), default="mdy", server_default="mdy")
    # Where "Prescribe" leads: the portal's own screens ("portal") or the e-prescribing
    # vendor's embedded screen ("vendor").
    prescribing_path: Mapped[str] = mapped_column(
        String(16), default="portal", server_default="portal"
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    locations: Mapped[list[Location]] = relationship(
        back_populates="clinic", order_by="Location.name"
    )


class Location(db.Model):
    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(default=True)

    clinic: Mapped[Clinic] = relationship(back_populates="locations")

"""The patient registry."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Index, String, event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.patients.identifiers import name_sound
from portal.timeutil import UTCDateTime, utcnow

# Search keys compare byte-wise on PostgreSQL (collation "C"), so a prefix range
# (key >= 'smi' AND key < 'smj') uses the index on both databases.
SearchKey = String(200).with_variant(String(200, collation="C"), "postgresql")

SEX_AT_BIRTH = {"female": "Female", "male": "Male", "unknown": "Unknown"}
PATIENT_STATUSES = {"active": "Active", "inactive": "Inactive", "deceased": "Deceased"}


class Patient(db.Model):
    """A person the clinic cares for. Never deleted: marked inactive or deceased instead."""

    __tablename__ = "patients"
    __table_args__ = (
        Index("ix_patients_name_key", "family_key", "given_key", "birth_date"),
        # "Rosalind" alone: the given name first, read in index order like the family name.
        Index("ix_patients_given_key", "given_key", "family_key", "birth_date"),
        Index("ix_patients_birth_date", "birth_date"),
        Index("ix_patients_phone_mobile", "phone_mobile"),
        Index("ix_patients_phone_home", "phone_home"),
        Index("ix_patients_phone_work", "phone_work"),
        CheckConstraint("status IN ('active', 'inactive', 'deceased')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(16), unique=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    preferred_name: Mapped[str | None] = mapped_column(String(100))
    # Lower-case, accent-free copies of the names that search compares against.
    given_key: Mapped[str] = mapped_column(SearchKey)
    family_key: Mapped[str] = mapped_column(SearchKey)
    birth_date: Mapped[date]
    sex_at_birth: Mapped[str] = mapped_column(String(16))
    gender_identity: Mapped[str | None] = mapped_column(String(100))
    pronouns: Mapped[str | None] = mapped_column(String(50))
    # Phones are stored in E.164 (+14155550123) so any typed format finds them.
    phone_mobile: Mapped[str | None] = mapped_column(String(20))
    phone_home: Mapped[str | None] = mapped_column(String(20))
    phone_work: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(2))
    preferred_language: Mapped[str | None] = mapped_column(String(50))
    emergency_contact_name: Mapped[str | None] = mapped_column(String(200))
    emergency_contact_relationship: Mapped[str | None] = mapped_column(String(100))
    emergency_contact_phone: Mapped[str | None] = mapped_column(String(20))
    insurance_payer: Mapped[str | None] = mapped_column(String(200))
    insurance_member_id: Mapped[str | None] = mapped_column(String(64))
    insurance_group: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    deceased_date: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def display_name(self) -> str:
        """ "Family, Given (Preferred)": how staff read a name in lists and banners."""
        return format_display_name(self.family_name, self.given_name, self.preferred_name)


def format_display_name(family_name: str, given_name: str, preferred_name: str | None) -> str:
    """A patient's display name from the three columns, for lists that load only those
    (a day's calendar) instead of whole rows."""
    name = f"{family_name}, {given_name}"
    if preferred_name and preferred_name != given_name:
        name += f" ({preferred_name})"
    return name


class PatientName(db.Model):
    """Every name key (given or family) in the registry, once, with its phonetic key.

    Near-miss search compares what was typed with these few thousand words (a million
    patients share a few thousand names), then reads patients by exact key through the name
    indexes: comparing with every patient's row would read tens of thousands of them for a
    common name. A key whose last patient was renamed stays: it then finds nobody.
    """

    __tablename__ = "patient_names"
    __table_args__ = (
        Index("ix_patient_names_sound", "sound"),
        # pg_trgm's GIN index on PostgreSQL. SQLite has no trigram index: there the same
        # name is an empty partial index ("WHERE 0", costs nothing), so both keep one schema.
        Index(
            "ix_patient_names_trgm",
            "key",
            postgresql_using="gin",
            postgresql_ops={"key": "gin_trgm_ops"},
            sqlite_where=text("0"),
        ),
    )

    key: Mapped[str] = mapped_column(SearchKey, primary_key=True)
    sound: Mapped[str] = mapped_column(SearchKey)


def remember_names(connection, keys: Iterable[str]) -> None:
    """Add name keys not yet in ``patient_names`` (in the caller's transaction)."""
    rows = [{"key": key, "sound": name_sound(key)} for key in sorted(set(keys)) if key]
    if not rows:
        return
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(insert(PatientName.__table__).on_conflict_do_nothing(), rows)


@event.listens_for(Patient, "after_insert")
@event.listens_for(Patient, "after_update")
def _remember_names_of(_mapper, connection, patient: Patient) -> None:
    # Every ORM write of a patient (the registry's services, tests' factories) keeps the
    # names list whole; bulk inserts (the demo seed) call remember_names themselves.
    remember_names(connection, (patient.family_key, patient.given_key))

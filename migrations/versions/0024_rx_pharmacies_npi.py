"""E-prescribing completion: the prescriber's NPI; the clinic's default prescribing path;
the patient's preferred pharmacies; a prescription's fills (last fill, count); each
prescriber's encrypted EPCS credential at the vendor (sendEpcs PIN and OTP seed).

Revision ID: 0024
Revises: 0022
Create Date: 2026-12-06 11:55:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("npi", sa.String(10), nullable=True))
    with op.batch_alter_table("clinics") as batch:
        batch.add_column(
            sa.Column("prescribing_path", sa.String(16), nullable=False, server_default="portal")
        )
    # Plain ADD COLUMN (no batch copy): the prescriptions table carries triggers.
    op.add_column("prescriptions", sa.Column("last_fill_reported", sa.String(40), nullable=True))
    op.add_column("prescriptions", sa.Column("last_filled_on", sa.Date(), nullable=True))
    op.add_column(
        "prescriptions", sa.Column("fills", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_table(
        "patient_pharmacies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("patient_id", sa.Integer(), sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("connector", sa.String(64), nullable=False),
        sa.Column("pharmacy_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("address", sa.String(500), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("epcs", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("is_primary", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("added_by_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint(
            "patient_id", "connector", "pharmacy_id", name="uq_patient_pharmacies_pharmacy"
        ),
    )
    op.create_index("ix_patient_pharmacies_patient_id", "patient_pharmacies", ["patient_id"])
    op.create_table(
        "epcs_vendor_credentials",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("connector", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("pin_encrypted", sa.Text(), nullable=False),
        sa.Column("otp_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("connector", "user_id", name="uq_epcs_vendor_credentials_user"),
    )


def downgrade():
    op.drop_table("epcs_vendor_credentials")
    op.drop_index("ix_patient_pharmacies_patient_id", table_name="patient_pharmacies")
    op.drop_table("patient_pharmacies")
    op.drop_column("prescriptions", "fills")
    op.drop_column("prescriptions", "last_filled_on")
    op.drop_column("prescriptions", "last_fill_reported")
    with op.batch_alter_table("clinics") as batch:
        batch.drop_column("prescribing_path")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("npi")

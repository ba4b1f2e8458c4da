"""The prescriber's Rx inbox (issue 11, section 6): pharmacies' renewal and change requests
pulled from the e-prescribing vendor, and prescribers' acknowledgements of cancel responses.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 12:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "rx_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("vendor_request_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("change_type", sa.String(length=32), nullable=True),
        sa.Column("clinician_vendor_id", sa.String(length=64), nullable=True),
        sa.Column("prescriber_id", sa.Integer(), nullable=True),
        sa.Column("patient_vendor_id", sa.String(length=64), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("vendor_prescription_id", sa.String(length=64), nullable=True),
        sa.Column("prescription_id", sa.Integer(), nullable=True),
        sa.Column("pharmacy_id", sa.String(length=32), nullable=True),
        sa.Column("drug", sa.String(length=300), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("refills", sa.SmallInteger(), nullable=True),
        sa.Column("comment", sa.String(length=250), nullable=True),
        sa.Column("denial_reason", sa.String(length=32), nullable=True),
        sa.Column("note", sa.String(length=250), nullable=True),
        sa.Column("answered_by_id", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_prescription_id", sa.Integer(), nullable=True),
        sa.Column("vendor_answer", sa.String(length=16), nullable=True),
        sa.Column("vendor_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["answered_by_id"], ["users.id"], name="fk_rx_requests_answered_by_id_users"
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name="fk_rx_requests_patient_id_patients"
        ),
        sa.ForeignKeyConstraint(
            ["prescriber_id"], ["users.id"], name="fk_rx_requests_prescriber_id_users"
        ),
        sa.ForeignKeyConstraint(
            ["prescription_id"],
            ["prescriptions.id"],
            name="fk_rx_requests_prescription_id_prescriptions",
        ),
        sa.ForeignKeyConstraint(
            ["response_prescription_id"],
            ["prescriptions.id"],
            name="fk_rx_requests_response_prescription_id_prescriptions",
            ondelete="SET NULL",  # a discarded approval draft leaves the request pending
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rx_requests"),
        sa.UniqueConstraint("connector", "vendor_request_id", name="uq_rx_requests_vendor"),
        sa.UniqueConstraint("response_prescription_id", name="uq_rx_requests_response"),
    )
    op.create_index("ix_rx_requests_patient_id", "rx_requests", ["patient_id"])
    op.create_index("ix_rx_requests_prescriber_state", "rx_requests", ["prescriber_id", "state"])
    op.create_table(
        "rx_acknowledgements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prescription_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"],
            ["users.id"],
            name="fk_rx_acknowledgements_acknowledged_by_id_users",
        ),
        sa.ForeignKeyConstraint(
            ["prescription_id"],
            ["prescriptions.id"],
            name="fk_rx_acknowledgements_prescription_id_prescriptions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rx_acknowledgements"),
        sa.UniqueConstraint("prescription_id", "state", name="uq_rx_acknowledgements_state"),
    )


def downgrade():
    op.drop_table("rx_acknowledgements")
    op.drop_index("ix_rx_requests_prescriber_state", table_name="rx_requests")
    op.drop_index("ix_rx_requests_patient_id", table_name="rx_requests")
    op.drop_table("rx_requests")

"""Labs foundation (issue 12): raw HL7 messages (stored before they are acknowledged, unique
by sender and control id), lab orders and their tests, results (corrections supersede,
history kept) and the queue of results not attached to a patient.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 09:20:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

Instant = sa.DateTime(timezone=True)
ACCEPTED = sa.text("ack_code = 'AA'")


def upgrade():
    op.create_table(
        "lab_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("sending_facility", sa.String(length=227), nullable=True),
        sa.Column("control_id", sa.String(length=199), nullable=True),
        sa.Column("message_type", sa.String(length=32), nullable=True),
        sa.Column("version", sa.String(length=16), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", Instant, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("processed_at", Instant, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lab_messages_state", "lab_messages", ["state", "id"])
    op.create_index(
        "uq_lab_messages_accepted",
        "lab_messages",
        ["direction", "sending_facility", "control_id"],
        unique=True,
        postgresql_where=ACCEPTED,
        sqlite_where=ACCEPTED,
    )

    op.create_table(
        "lab_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("placer_order_number", sa.String(length=22), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("ordering_provider_id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.Integer(), nullable=True),
        sa.Column("connector", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("fasting", sa.Boolean(), nullable=False),
        sa.Column("collection_date", sa.Date(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("diagnoses", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("signed_at", Instant, nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["ordering_provider_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["encounter_id"], ["encounters.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("placer_order_number"),
    )
    op.create_index("ix_lab_orders_patient", "lab_orders", ["patient_id", "created_at"])
    op.create_index(
        "ix_lab_orders_provider_status", "lab_orders", ["ordering_provider_id", "status"]
    )

    op.create_table(
        "lab_order_tests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("loinc", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lab_code", sa.String(length=50), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["lab_orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "loinc", name="uq_lab_order_tests_loinc"),
    )

    op.create_table(
        "unmatched_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=True),
        sa.Column("candidate_patient_ids", sa.String(length=200), nullable=True),
        sa.Column("placer_order_number", sa.String(length=22), nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("resolved_at", Instant, nullable=True),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["lab_messages.id"]),
        sa.ForeignKeyConstraint(["resolved_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_unmatched_results_open", "unmatched_results", ["resolved_at", "id"])

    op.create_table(
        "lab_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("order_test_id", sa.Integer(), nullable=True),
        sa.Column("unmatched_id", sa.Integer(), nullable=True),
        sa.Column("filler_order_number", sa.String(length=50), nullable=True),
        sa.Column("loinc", sa.String(length=10), nullable=True),
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("code_system", sa.String(length=20), nullable=True),
        sa.Column("sub_id", sa.String(length=20), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value_type", sa.String(length=3), nullable=False),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("value_numeric", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("units", sa.String(length=60), nullable=True),
        sa.Column("reference_range", sa.String(length=60), nullable=True),
        sa.Column("abnormal_flag", sa.String(length=5), nullable=True),
        sa.Column("status", sa.String(length=1), nullable=False),
        sa.Column("observed_at", Instant, nullable=True),
        sa.Column("performing_lab", sa.String(length=200), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("superseded_at", Instant, nullable=True),
        sa.Column("received_at", Instant, nullable=False),
        sa.Column("reviewed_at", Instant, nullable=True),
        sa.Column("reviewed_by_id", sa.Integer(), nullable=True),
        sa.Column("review_comment", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["lab_messages.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["lab_orders.id"]),
        sa.ForeignKeyConstraint(["order_test_id"], ["lab_order_tests.id"]),
        sa.ForeignKeyConstraint(["unmatched_id"], ["unmatched_results.id"]),
        sa.ForeignKeyConstraint(["supersedes_id"], ["lab_results.id"]),
        sa.ForeignKeyConstraint(["reviewed_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lab_results_patient", "lab_results", ["patient_id", "loinc", "observed_at"])
    op.create_index("ix_lab_results_order_test", "lab_results", ["order_test_id"])
    op.create_index("ix_lab_results_unmatched", "lab_results", ["unmatched_id"])
    op.create_index("ix_lab_results_unreviewed", "lab_results", ["reviewed_at", "superseded_at"])


def downgrade():
    op.drop_table("lab_results")
    op.drop_table("unmatched_results")
    op.drop_table("lab_order_tests")
    op.drop_table("lab_orders")
    op.drop_table("lab_messages")

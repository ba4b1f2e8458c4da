"""Lab results review (issue 12, results inbox): each result's reviewer (its order's orderer;
none: the shared pool) and rank (critical, abnormal, normal) with the inbox's index, and the
index of the chart's critical-unreviewed flag (one patient's unreviewed HH/LL/AA results).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 12:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

WAITING = "reviewed_at IS NULL AND superseded_at IS NULL AND patient_id IS NOT NULL"
CRITICAL = WAITING + " AND abnormal_flag IN ('HH', 'LL', 'AA')"


def upgrade():
    # Whose inbox a result is in (the order's orderer; NULL: the shared pool) and its place
    # there (0 critical, 1 abnormal, 2 normal), so the inbox is one index range in order.
    with op.batch_alter_table("lab_results") as batch:
        batch.add_column(sa.Column("reviewer_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("review_rank", sa.SmallInteger(), server_default="2", nullable=False)
        )
        batch.create_foreign_key(
            "fk_lab_results_reviewer_id_users", "users", ["reviewer_id"], ["id"]
        )
    op.execute(
        "UPDATE lab_results SET reviewer_id = (SELECT ordering_provider_id FROM lab_orders "
        "WHERE lab_orders.id = lab_results.order_id), review_rank = CASE "
        "WHEN abnormal_flag IN ('HH', 'LL', 'AA') THEN 0 "
        "WHEN abnormal_flag IS NULL OR abnormal_flag IN ('', 'N') THEN 2 ELSE 1 END"
    )
    op.create_index(
        "ix_lab_results_inbox",
        "lab_results",
        ["reviewer_id", "review_rank", "received_at", "id"],
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )
    op.create_index(
        "ix_lab_results_patient_critical",
        "lab_results",
        ["patient_id"],
        postgresql_where=sa.text(CRITICAL),
        sqlite_where=sa.text(CRITICAL),
    )


def downgrade():
    op.drop_index("ix_lab_results_patient_critical", table_name="lab_results")
    op.drop_index("ix_lab_results_inbox", table_name="lab_results")
    with op.batch_alter_table("lab_results") as batch:
        batch.drop_constraint("fk_lab_results_reviewer_id_users", type_="foreignkey")
        batch.drop_column("review_rank")
        batch.drop_column("reviewer_id")

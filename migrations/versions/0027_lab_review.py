"""Lab results review (issue 12, results inbox): indexes for the prescribers' inbox (a
prescriber's orders' unreviewed current results), the shared pool (unreviewed results with no
order) and the chart's critical-unreviewed flag (one patient's unreviewed HH/LL/AA results).

Revision ID: 0027
Revises: 0022
Create Date: 2026-12-06 12:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0027"
down_revision = "0022"
branch_labels = None
depends_on = None

WAITING = "reviewed_at IS NULL AND superseded_at IS NULL"
CRITICAL = WAITING + " AND abnormal_flag IN ('HH', 'LL', 'AA')"


def upgrade():
    op.create_index(
        "ix_lab_results_order_waiting",
        "lab_results",
        # Covering: the inbox reads the flag and age of each waiting result from the index
        # (the last two columns are NULL by the predicate, there so no table row is read).
        ["order_id", "abnormal_flag", "received_at", "patient_id", "reviewed_at", "superseded_at"],
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
    op.drop_index("ix_lab_results_order_waiting", table_name="lab_results")

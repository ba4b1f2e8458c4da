"""Lab results: an index on (patient_id, filler_order_number), what a new result's lookup of
the results it supersedes uses (the same patient's, never another's with the same number).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 10:10:00.000000

"""

from alembic import op


# revision identifiers, used by Alembic.
revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_lab_results_patient_filler", "lab_results", ["patient_id", "filler_order_number"]
    )


def downgrade():
    op.drop_index("ix_lab_results_patient_filler", table_name="lab_results")

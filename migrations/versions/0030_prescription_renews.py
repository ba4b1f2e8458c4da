"""A prescription's link to the prescription it renews ("Renew", or the approval of a
pharmacy's renewal request): the safety checks leave the renewed one out of the patient's
active drugs (no "duplicate therapy" against itself), and signing links the renewal to the
medication-list entry of the renewed one instead of listing the drug a second time.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 15:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

COLUMN = "renews_prescription_id"
FOREIGN_KEY = "fk_prescriptions_renews_prescription_id_prescriptions"
INDEX = "ix_prescriptions_renews_prescription_id"


def upgrade():
    # Plain ADD COLUMN (no batch copy): the prescriptions table carries triggers (0020).
    if op.get_bind().dialect.name == "sqlite":
        # SQLite has no ALTER ... ADD CONSTRAINT: the reference goes inline, in the ADD COLUMN.
        op.add_column(
            "prescriptions",
            sa.Column(COLUMN, sa.Integer(), sa.ForeignKey("prescriptions.id"), nullable=True),
            inline_references=True,
        )
    else:
        op.add_column("prescriptions", sa.Column(COLUMN, sa.Integer(), nullable=True))
        op.create_foreign_key(FOREIGN_KEY, "prescriptions", "prescriptions", [COLUMN], ["id"])
    # Deleting a draft checks the reference: an index, not a scan of every prescription.
    op.create_index(INDEX, "prescriptions", [COLUMN])


def downgrade():
    op.drop_index(INDEX, table_name="prescriptions")
    # SQLite drops a column referencing another table in place (3.35+); PostgreSQL drops its
    # foreign key with it.
    op.drop_column("prescriptions", COLUMN)

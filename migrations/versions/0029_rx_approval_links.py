"""An approved pharmacy request says why its new prescription at the vendor is not linked
yet (issue 11): the vendor makes a new prescription from an approval without telling its id,
and the portal links it only when exactly one of the patient's prescriptions there fits.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 15:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("rx_requests", sa.Column("vendor_link_note", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("rx_requests") as batch:
        batch.drop_column("vendor_link_note")

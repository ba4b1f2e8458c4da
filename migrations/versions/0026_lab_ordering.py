"""Lab ordering: when an order was handed to the lab, acknowledged by it, or cancelled (and
by whom). An order's states and their meaning are in portal/labs/states.py.

Revision ID: 0026
Revises: 0022
Create Date: 2026-12-06 12:00:00.000000

"""

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = "0026"
down_revision = "0024"
branch_labels = None
depends_on = None

Instant = sa.DateTime(timezone=True)


def upgrade():
    with op.batch_alter_table("lab_orders") as batch:
        batch.add_column(sa.Column("sent_at", Instant, nullable=True))
        batch.add_column(sa.Column("acknowledged_at", Instant, nullable=True))
        batch.add_column(sa.Column("cancelled_at", Instant, nullable=True))
        batch.add_column(sa.Column("cancelled_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_lab_orders_cancelled_by_id_users", "users", ["cancelled_by_id"], ["id"]
        )


def downgrade():
    with op.batch_alter_table("lab_orders") as batch:
        batch.drop_constraint("fk_lab_orders_cancelled_by_id_users", type_="foreignkey")
        batch.drop_column("cancelled_by_id")
        batch.drop_column("cancelled_at")
        batch.drop_column("acknowledged_at")
        batch.drop_column("sent_at")

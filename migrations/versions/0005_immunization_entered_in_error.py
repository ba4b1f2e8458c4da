"""Immunizations can be marked entered in error, as vital signs can: a flag and the reason,
kept with the record (it stays, struck out, on the patient's immunization page and leaves
the visit's lists and the chart summary's count). Existing records are not mistakes: the
flag starts false for every row already there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 01:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('immunizations', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('entered_in_error', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column('entered_in_error_reason', sa.String(length=300), nullable=True))


def downgrade():
    with op.batch_alter_table('immunizations', schema=None) as batch_op:
        batch_op.drop_column('entered_in_error_reason')
        batch_op.drop_column('entered_in_error')

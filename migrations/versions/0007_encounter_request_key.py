"""An ad hoc encounter keeps the one-time key of the form it was made from, unique, so the
same form sent twice (a double click, a resent post) makes one encounter.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 02:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('encounters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_key', sa.String(length=32), nullable=True))
        batch_op.create_index('uq_encounters_request_key', ['request_key'], unique=True)


def downgrade():
    with op.batch_alter_table('encounters', schema=None) as batch_op:
        batch_op.drop_index('uq_encounters_request_key')
        batch_op.drop_column('request_key')

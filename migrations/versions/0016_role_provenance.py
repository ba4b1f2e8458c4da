"""Role provenance (issue 14, security finding 2): who granted each role and when, so the
second administrator of a two-person act is not one the first made (or made within a day).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 06:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    # Existing roles keep an empty provenance: granted before it was kept.
    with op.batch_alter_table('user_roles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('granted_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('granted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            'fk_user_roles_granted_by_id_users', 'users', ['granted_by_id'], ['id'],
            ondelete='SET NULL',
        )


def downgrade():
    with op.batch_alter_table('user_roles', schema=None) as batch_op:
        batch_op.drop_constraint('fk_user_roles_granted_by_id_users', type_='foreignkey')
        batch_op.drop_column('granted_at')
        batch_op.drop_column('granted_by_id')

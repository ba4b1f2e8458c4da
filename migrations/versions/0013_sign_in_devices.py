"""Browsers that have signed in to an account before (device cookies): each with its own
failure count and back-off, so an account's back-off cannot lock its owner out.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 05:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sign_in_devices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('nonce_hash', sa.String(length=64), nullable=False),
        sa.Column('failed_sign_ins', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'],
            name=op.f('fk_sign_in_devices_user_id_users'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_devices')),
        sa.UniqueConstraint('nonce_hash', name=op.f('uq_sign_in_devices_nonce_hash')),
    )
    with op.batch_alter_table('sign_in_devices', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_sign_in_devices_user_id'), ['user_id'], unique=False
        )


def downgrade():
    with op.batch_alter_table('sign_in_devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sign_in_devices_user_id'))
    op.drop_table('sign_in_devices')

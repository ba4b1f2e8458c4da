"""Account safeguards (issue 14, security findings 1 and 2): temporary passwords, the last day
of a person's employment, notices the account's owner acknowledges, the two-person rule for
second-factor resets, and calendar feeds that name patients only when their provider chose so.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 05:25:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

PENDING = sa.text('decided_at IS NULL')
UNREAD = sa.text('acknowledged_at IS NULL')


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('employment_ends_on', sa.Date(), nullable=True))
    with op.batch_alter_table('calendar_feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shows_names', sa.Boolean(), nullable=False, server_default=sa.false()))

    op.create_table(
        'account_notices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('actor_name', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='fk_account_notices_user_id_users', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name='fk_account_notices_actor_id_users', ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_account_notices'),
    )
    op.create_index(
        'ix_account_notices_unread', 'account_notices', ['user_id'], unique=False,
        postgresql_where=UNREAD, sqlite_where=UNREAD,
    )

    op.create_table(
        'account_approvals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('proposed_by_id', sa.Integer(), nullable=True),
        sa.Column('proposed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='fk_account_approvals_user_id_users', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['proposed_by_id'], ['users.id'], name='fk_account_approvals_proposed_by_id_users', ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name='fk_account_approvals_decided_by_id_users', ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_account_approvals'),
    )
    # One open proposal per account and action: two admins proposing at once meet here.
    op.create_index(
        'uq_account_approvals_pending', 'account_approvals', ['user_id', 'action'], unique=True,
        postgresql_where=PENDING, sqlite_where=PENDING,
    )


def downgrade():
    op.drop_index('uq_account_approvals_pending', table_name='account_approvals')
    op.drop_table('account_approvals')
    op.drop_index('ix_account_notices_unread', table_name='account_notices')
    op.drop_table('account_notices')
    with op.batch_alter_table('calendar_feeds', schema=None) as batch_op:
        batch_op.drop_column('shows_names')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('employment_ends_on')
        batch_op.drop_column('must_change_password')

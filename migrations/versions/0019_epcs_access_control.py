"""EPCS logical access control (issue 11, 21 CFR 1311.125): a prescriber's DEA number (with who
set it and when), and the permissions to sign controlled-substance prescriptions that two
people granted (the proposals themselves are rows of account_approvals).

Revision ID: 0019
Revises: 0016
Create Date: 2026-12-06 08:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0016'
branch_labels = None
depends_on = None

CURRENT = sa.text('revoked_at IS NULL')


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dea_number', sa.String(length=9), nullable=True))
        batch_op.add_column(sa.Column('dea_number_set_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('dea_number_set_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            'fk_users_dea_number_set_by_id_users', 'users', ['dea_number_set_by_id'], ['id'],
            ondelete='SET NULL',
        )

    op.create_table(
        'epcs_permissions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('dea_number', sa.String(length=9), nullable=False),
        sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('proposed_by_id', sa.Integer(), nullable=True),
        sa.Column('approved_by_id', sa.Integer(), nullable=True),
        sa.Column('grant_approval_id', sa.Integer(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_by_id', sa.Integer(), nullable=True),
        sa.Column('revoke_approval_id', sa.Integer(), nullable=True),
        sa.Column('revoke_reason', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='fk_epcs_permissions_user_id_users', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['proposed_by_id'], ['users.id'], name='fk_epcs_permissions_proposed_by_id_users', ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['approved_by_id'], ['users.id'], name='fk_epcs_permissions_approved_by_id_users', ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['revoked_by_id'], ['users.id'], name='fk_epcs_permissions_revoked_by_id_users', ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['grant_approval_id'], ['account_approvals.id'], name='fk_epcs_permissions_grant_approval_id_account_approvals', ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['revoke_approval_id'], ['account_approvals.id'], name='fk_epcs_permissions_revoke_approval_id_account_approvals', ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_epcs_permissions'),
    )
    # One current permission per prescriber: two approvals racing meet here.
    op.create_index(
        'uq_epcs_permissions_current', 'epcs_permissions', ['user_id'], unique=True,
        postgresql_where=CURRENT, sqlite_where=CURRENT,
    )


def downgrade():
    op.drop_index('uq_epcs_permissions_current', table_name='epcs_permissions')
    op.drop_table('epcs_permissions')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('fk_users_dea_number_set_by_id_users', type_='foreignkey')
        batch_op.drop_column('dea_number_set_at')
        batch_op.drop_column('dea_number_set_by_id')
        batch_op.drop_column('dea_number')

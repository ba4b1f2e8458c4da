"""Integrations: each clinic's connector settings (secrets encrypted) and the transactional
outbox the worker delivers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 04:00:00.000000

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WAITING = sa.text("status IN ('pending', 'in_flight')")


def upgrade():
    op.create_table(
        'connector_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('clinic_id', sa.Integer(), nullable=False),
        sa.Column('connector', sa.String(length=64), nullable=False),
        sa.Column('values', sa.JSON(), nullable=False),
        sa.Column('secrets', sa.JSON(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('paused', sa.Boolean(), nullable=False),
        sa.Column('enabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name='fk_connector_settings_clinic_id_clinics'),
        sa.PrimaryKeyConstraint('id', name='pk_connector_settings'),
        sa.UniqueConstraint('clinic_id', 'connector', name='uq_connector_settings'),
    )
    op.create_table(
        'outbox_messages',
        sa.Column('id', BigId, nullable=False),
        sa.Column('connector', sa.String(length=64), nullable=False),
        sa.Column('operation', sa.String(length=64), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('idempotency_key', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('leased_by', sa.String(length=128), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('patient_id', sa.Integer(), nullable=True),
        sa.Column('prescription_id', sa.Integer(), nullable=True),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_outbox_messages'),
        sa.UniqueConstraint('idempotency_key', name='uq_outbox_messages_idempotency_key'),
    )
    op.create_index(
        'ix_outbox_due', 'outbox_messages', ['next_attempt_at', 'id'],
        postgresql_where=WAITING, sqlite_where=WAITING,
    )
    op.create_index('ix_outbox_connector_status', 'outbox_messages', ['connector', 'status', 'created_at'])
    op.create_index('ix_outbox_patient', 'outbox_messages', ['patient_id', 'created_at'])


def downgrade():
    op.drop_table('outbox_messages')
    op.drop_table('connector_settings')

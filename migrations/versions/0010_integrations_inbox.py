"""Integrations, inbound: webhooks stored before they are acknowledged (deduplicated by the
sender's event id), refusals counted without their content, and the map between vendors'
ids and ours.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNPROCESSED = sa.text("status IN ('received', 'failed')")


def upgrade():
    op.create_table(
        'inbox_messages',
        sa.Column('id', BigId, nullable=False),
        sa.Column('connector', sa.String(length=64), nullable=False),
        sa.Column('event_id', sa.String(length=128), nullable=False),
        sa.Column('event_type', sa.String(length=64), nullable=True),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('leased_by', sa.String(length=64), nullable=True),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('patient_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_inbox_messages'),
        sa.UniqueConstraint('connector', 'event_id', name='uq_inbox_messages_event'),
    )
    op.create_index(
        'ix_inbox_due', 'inbox_messages', ['next_attempt_at', 'id'],
        postgresql_where=UNPROCESSED, sqlite_where=UNPROCESSED,
    )
    op.create_index('ix_inbox_connector_received', 'inbox_messages', ['connector', 'received_at'])
    op.create_table(
        'webhook_refusals',
        sa.Column('id', BigId, nullable=False),
        sa.Column('connector', sa.String(length=64), nullable=False),
        sa.Column('refused_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_webhook_refusals'),
    )
    op.create_index('ix_webhook_refusals_connector', 'webhook_refusals', ['connector', 'refused_at'])
    op.create_table(
        'external_ids',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('connector', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('local_id', sa.Integer(), nullable=False),
        sa.Column('external_id', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_external_ids'),
        sa.UniqueConstraint('connector', 'kind', 'local_id', name='uq_external_ids_local'),
        sa.UniqueConstraint('connector', 'kind', 'external_id', name='uq_external_ids_external'),
    )


def downgrade():
    op.drop_table('external_ids')
    op.drop_table('webhook_refusals')
    op.drop_table('inbox_messages')

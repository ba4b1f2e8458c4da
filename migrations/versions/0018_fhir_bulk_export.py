"""FHIR bulk export jobs (issue 13): one row per ``$export`` request, claimed by the worker
with a lease, listing the NDJSON files it wrote.

Revision ID: 0018
Revises: 0017 (the lead re-chains the FHIR migrations at merge)
Create Date: 2026-12-06 08:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'fhir_bulk_export_jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.String(length=100), nullable=False),
        sa.Column('client_name', sa.String(length=200), nullable=False),
        sa.Column('level', sa.String(length=16), nullable=False),
        sa.Column('types', sa.JSON(), nullable=False),
        sa.Column('since', sa.DateTime(timezone=True), nullable=True),
        sa.Column('request_url', sa.String(length=2000), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('types_done', sa.Integer(), nullable=False),
        sa.Column('resources_written', sa.Integer(), nullable=False),
        sa.Column('output', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('leased_by', sa.String(length=100), nullable=True),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('transaction_time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "level IN ('system', 'patient')", name=op.f('ck_fhir_bulk_export_jobs_level')
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            name=op.f('ck_fhir_bulk_export_jobs_status'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_bulk_export_jobs')),
    )
    op.create_index(
        'ix_fhir_bulk_export_jobs_due', 'fhir_bulk_export_jobs', ['status', 'lease_until']
    )
    op.create_index(
        'ix_fhir_bulk_export_jobs_client', 'fhir_bulk_export_jobs', ['client_id', 'id']
    )


def downgrade():
    op.drop_index('ix_fhir_bulk_export_jobs_client', table_name='fhir_bulk_export_jobs')
    op.drop_index('ix_fhir_bulk_export_jobs_due', table_name='fhir_bulk_export_jobs')
    op.drop_table('fhir_bulk_export_jobs')

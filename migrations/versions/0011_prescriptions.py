"""Prescriptions written at the e-prescribing vendor, kept in the chart with their statuses.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 03:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'prescriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('connector', sa.String(length=64), nullable=False),
        sa.Column('vendor_id', sa.String(length=64), nullable=False),
        sa.Column('prescriber_id', sa.Integer(), nullable=True),
        sa.Column('drug', sa.String(length=300), nullable=False),
        sa.Column('rxcui', sa.String(length=16), nullable=True),
        sa.Column('ndc', sa.String(length=16), nullable=True),
        sa.Column('quantity', sa.String(length=32), nullable=True),
        sa.Column('refills', sa.String(length=16), nullable=True),
        sa.Column('days_supply', sa.Integer(), nullable=True),
        sa.Column('directions', sa.String(length=1000), nullable=True),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('medication_status', sa.String(length=32), nullable=True),
        sa.Column('fhir_status', sa.String(length=32), nullable=False),
        sa.Column('written_on', sa.Date(), nullable=True),
        sa.Column('medication_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name='fk_prescriptions_patient_id_patients'),
        sa.ForeignKeyConstraint(['prescriber_id'], ['users.id'], name='fk_prescriptions_prescriber_id_users'),
        sa.ForeignKeyConstraint(['medication_id'], ['medications.id'], name='fk_prescriptions_medication_id_medications'),
        sa.PrimaryKeyConstraint('id', name='pk_prescriptions'),
        sa.UniqueConstraint('connector', 'vendor_id', name='uq_prescriptions_vendor'),
    )
    op.create_index('ix_prescriptions_patient', 'prescriptions', ['patient_id', 'written_on'])


def downgrade():
    op.drop_table('prescriptions')

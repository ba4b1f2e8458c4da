"""Diagnosis favourites and the clinic's diagnosis use counts (ICD-10 search ranking); the
coded drug class of an allergy.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 05:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'diagnosis_favourites',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('icd10_code', sa.String(length=8), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name='fk_diagnosis_favourites_user_id_users',
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('user_id', 'icd10_code', name='pk_diagnosis_favourites'),
    )
    op.create_table(
        'diagnosis_uses',
        sa.Column('icd10_code', sa.String(length=8), nullable=False),
        sa.Column('uses', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('icd10_code', name='pk_diagnosis_uses'),
    )
    op.create_index('ix_diagnosis_uses_uses', 'diagnosis_uses', ['uses', 'icd10_code'])
    # The clinic's use so far: each problem recorded with a code, each visit that addressed
    # one (the same statement on SQLite and PostgreSQL).
    op.execute(
        """
        INSERT INTO diagnosis_uses (icd10_code, uses)
        SELECT icd10_code, SUM(n) FROM (
            SELECT icd10_code, COUNT(*) AS n FROM problems GROUP BY icd10_code
            UNION ALL
            SELECT p.icd10_code, COUNT(*) AS n
            FROM encounter_problems ep JOIN problems p ON p.id = ep.problem_id
            GROUP BY p.icd10_code
        ) counted
        GROUP BY icd10_code
        """
    )
    with op.batch_alter_table('allergies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drug_class_code', sa.String(length=32), nullable=True))


def downgrade():
    with op.batch_alter_table('allergies', schema=None) as batch_op:
        batch_op.drop_column('drug_class_code')
    op.drop_index('ix_diagnosis_uses_uses', table_name='diagnosis_uses')
    op.drop_table('diagnosis_uses')
    op.drop_table('diagnosis_favourites')

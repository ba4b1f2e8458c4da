"""Charting safety: one note of each kind per encounter (a unique index, so two "Start
provider note" clicks racing end on one note); immunizations looked up by encounter; the
reason a set of vital signs was marked entered in error; a partial index of the unsigned
notes (the home page's "waiting on you" list).

The unique index replaces the plain index on notes.encounter_id: its first column serves
the same lookups. Upgrading stops, naming the encounters, if a database already holds two
notes of one kind for an encounter (signed notes cannot be deleted, so nobody but a person
can decide what to do with them).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 01:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def refuse_duplicate_notes():
    duplicates = op.get_bind().execute(sa.text(
        "SELECT encounter_id, kind, COUNT(*) FROM notes GROUP BY encounter_id, kind "
        "HAVING COUNT(*) > 1 ORDER BY encounter_id, kind"
    )).all()
    if duplicates:
        listed = ", ".join(f"encounter {row[0]} ({row[1]}: {row[2]} notes)" for row in duplicates[:20])
        raise RuntimeError(
            "Migration 0004 needs at most one note of each kind per encounter, and these "
            f"encounters have more: {listed}. Merge or reassign them (drafts can be deleted; "
            "signed notes cannot), then upgrade again."
        )


def upgrade():
    refuse_duplicate_notes()
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.drop_index('ix_notes_encounter_id')
        batch_op.create_index('uq_notes_encounter_kind', ['encounter_id', 'kind'], unique=True)
        batch_op.create_index(
            'ix_notes_unsigned', ['created_at'], unique=False,
            sqlite_where=sa.text('signed_at IS NULL'), postgresql_where=sa.text('signed_at IS NULL'),
        )

    with op.batch_alter_table('immunizations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_immunizations_encounter_id'), ['encounter_id'], unique=False)

    with op.batch_alter_table('vital_signs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entered_in_error_reason', sa.String(length=300), nullable=True))


def downgrade():
    with op.batch_alter_table('vital_signs', schema=None) as batch_op:
        batch_op.drop_column('entered_in_error_reason')

    with op.batch_alter_table('immunizations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_immunizations_encounter_id'))

    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.drop_index('ix_notes_unsigned')
        batch_op.drop_index('uq_notes_encounter_kind')
        batch_op.create_index('ix_notes_encounter_id', ['encounter_id'], unique=False)

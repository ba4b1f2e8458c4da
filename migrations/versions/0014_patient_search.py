"""Patient search the way people type: given-name lookups, phonetic keys, pg_trgm, and the
clinic's date order.

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-06 05:20:00.000000

"""
from alembic import op
import sqlalchemy as sa

from portal.patients.identifiers import name_sound


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0011'
branch_labels = None
depends_on = None

SEARCH_KEY = sa.String(length=200).with_variant(sa.String(length=200, collation='C'), 'postgresql')
BATCH = 5000


def _fill_sound_keys(connection):
    """Phonetic keys of the patients already registered, in batches (a real registry may be
    large; one statement per row would hold the whole table in memory)."""
    patients = sa.table(
        'patients',
        sa.column('id', sa.Integer),
        sa.column('given_key', sa.String),
        sa.column('family_key', sa.String),
        sa.column('given_sound', sa.String),
        sa.column('family_sound', sa.String),
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(patients.c.id, patients.c.given_key, patients.c.family_key)
            .where(patients.c.id > last)
            .order_by(patients.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        connection.execute(
            patients.update()
            .where(patients.c.id == sa.bindparam('row_id'))
            .values(given_sound=sa.bindparam('given'), family_sound=sa.bindparam('family')),
            [
                {'row_id': row.id, 'given': name_sound(row.given_key), 'family': name_sound(row.family_key)}
                for row in rows
            ],
        )
        last = rows[-1].id


def upgrade():
    postgres = op.get_bind().dialect.name == 'postgresql'
    if postgres:
        # The test server and a deployment's migration role create it; on a managed database
        # where the role may not, an administrator runs this once beforehand.
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    with op.batch_alter_table('clinics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('date_order', sa.String(length=3), server_default='mdy', nullable=False))
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('given_sound', SEARCH_KEY, server_default='', nullable=False))
        batch_op.add_column(sa.Column('family_sound', SEARCH_KEY, server_default='', nullable=False))
    _fill_sound_keys(op.get_bind())
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index('ix_patients_given_key', ['given_key', 'family_key', 'birth_date'], unique=False)
        batch_op.create_index('ix_patients_family_sound', ['family_sound'], unique=False)
        batch_op.create_index('ix_patients_given_sound', ['given_sound'], unique=False)
    if postgres:
        op.create_index(
            'ix_patients_names_trgm',
            'patients',
            ['family_key', 'given_key'],
            unique=False,
            postgresql_using='gin',
            postgresql_ops={'family_key': 'gin_trgm_ops', 'given_key': 'gin_trgm_ops'},
        )
    else:
        # SQLite has no trigram index; an empty partial index of the same name keeps the
        # schema one (the models declare it for both).
        op.create_index(
            'ix_patients_names_trgm', 'patients', ['family_key', 'given_key'], unique=False,
            sqlite_where=sa.text('0'),
        )


def downgrade():
    op.drop_index('ix_patients_names_trgm', table_name='patients')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index('ix_patients_given_sound')
        batch_op.drop_index('ix_patients_family_sound')
        batch_op.drop_index('ix_patients_given_key')
        batch_op.drop_column('family_sound')
        batch_op.drop_column('given_sound')
    with op.batch_alter_table('clinics', schema=None) as batch_op:
        batch_op.drop_column('date_order')
    # The extension stays: other databases' objects may use it, and it holds no data.

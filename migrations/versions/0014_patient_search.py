"""Patient search the way people type: a given-name index, the registry's distinct names
with their phonetic keys (and pg_trgm's trigram index on PostgreSQL) for near misses, and
the clinic's date order.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 05:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# The phonetic key as this revision computes it, frozen here (a migration never changes):
# portal.patients.identifiers.name_sound must give the same keys, or a later revision must
# recompute patient_names.sound (tests/patients/test_search_names.py holds them together).
_SOUND_CLASSES = {
    **dict.fromkeys('bfpv', '1'),
    **dict.fromkeys('cgjkqsxz', '2'),
    **dict.fromkeys('dt', '3'),
    'l': '4',
    **dict.fromkeys('mn', '5'),
    'r': '6',
}
_SOUND_DIGRAPHS = (('ph', 'f'), ('ck', 'k'), ('gh', 'h'), ('sch', 'sk'))


def name_sound(key):
    letters = ''.join(char for char in key if 'a' <= char <= 'z')
    spelt = None
    while spelt != letters:
        spelt = letters
        for written, sound in _SOUND_DIGRAPHS:
            letters = letters.replace(written, sound)
    if not letters:
        return ''
    code = [_SOUND_CLASSES.get(letters[0], '0')]
    previous = code[0]
    for char in letters[1:]:
        digit = _SOUND_CLASSES.get(char)
        if digit is None:
            if char not in 'hw':
                previous = ''
            continue
        if digit != previous:
            code.append(digit)
        previous = digit
    return ''.join(code)[:64]


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

SEARCH_KEY = sa.String(length=200).with_variant(sa.String(length=200, collation='C'), 'postgresql')


def _fill_patient_names(connection):
    """The distinct name keys of the patients already registered, with their phonetic keys
    (computed by this revision's frozen copy of the app's function)."""
    keys = set()
    for column in ('family_key', 'given_key'):
        keys.update(connection.execute(sa.text(f'SELECT DISTINCT {column} FROM patients')).scalars())
    rows = [{'key': key, 'sound': name_sound(key)} for key in sorted(keys) if key]
    names = sa.table('patient_names', sa.column('key', sa.String), sa.column('sound', sa.String))
    for start in range(0, len(rows), 5000):
        connection.execute(names.insert(), rows[start:start + 5000])


def upgrade():
    postgres = op.get_bind().dialect.name == 'postgresql'
    if postgres:
        # The test server and a deployment's migration role create it; on a managed database
        # where the role may not, an administrator runs this once beforehand.
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    with op.batch_alter_table('clinics', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('date_order', sa.String(length=3), server_default='mdy', nullable=False)
        )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(
            'ix_patients_given_key', ['given_key', 'family_key', 'birth_date'], unique=False
        )
    op.create_table(
        'patient_names',
        sa.Column('key', SEARCH_KEY, nullable=False),
        sa.Column('sound', SEARCH_KEY, nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_patient_names')),
    )
    op.create_index('ix_patient_names_sound', 'patient_names', ['sound'], unique=False)
    if postgres:
        op.create_index(
            'ix_patient_names_trgm',
            'patient_names',
            ['key'],
            unique=False,
            postgresql_using='gin',
            postgresql_ops={'key': 'gin_trgm_ops'},
        )
    else:
        # SQLite has no trigram index; an empty partial index of the same name keeps the
        # schema one (the models declare it for both).
        op.create_index(
            'ix_patient_names_trgm', 'patient_names', ['key'], unique=False,
            sqlite_where=sa.text('0'),
        )
    _fill_patient_names(op.get_bind())


def downgrade():
    op.drop_index('ix_patient_names_trgm', table_name='patient_names')
    op.drop_index('ix_patient_names_sound', table_name='patient_names')
    op.drop_table('patient_names')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index('ix_patients_given_key')
    with op.batch_alter_table('clinics', schema=None) as batch_op:
        batch_op.drop_column('date_order')
    # The extension stays: other databases' objects may use it, and it holds no data.

"""The audit trail is keyed and sealed after the fact: an event is written with a MAC and no
place in the chain (seq, previous_hash and entry_hash become nullable, set later by the
sealer; a partial index finds the events waiting for it). ``source_address`` becomes
``source``: it holds an address, or "cli", "worker", "webhook".

Events already stored keep their unkeyed SHA-256 chain and are marked ``scheme = 'sha256'``
(new events are 'hmac'); the first keyed seal links to their head, so the keyed chain and the
checkpoints bind them too.

The append-only guard now lets one UPDATE through: the sealer's, setting the seal columns of
an unsealed event from NULL and nothing else. Every other UPDATE, DELETE and TRUNCATE is still
refused.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# What an event keeps as written, and what the sealer sets once (a migration keeps its own
# copy of the lists).
EVENT_COLUMNS = (
    "id", "occurred_at", "user_id", "username", "user_roles", "action", "patient_id",
    "object_type", "object_id", "category", "source", "outcome", "detail", "scheme", "nonce",
    "event_mac",
)
SEALED_COLUMNS = ("seq", "previous_hash", "entry_hash")  # set by every seal
SEAL_COLUMNS = SEALED_COLUMNS + ("seal_problem",)  # seal_problem only when a MAC failed


def _sealing_condition(same: str) -> str:
    """The one UPDATE allowed: an unsealed event gets its seal, nothing else changes."""
    return " AND ".join(
        [f"OLD.{c} IS NULL" for c in SEAL_COLUMNS]
        + [f"NEW.{c} IS NOT NULL" for c in SEALED_COLUMNS]
        + [f"NEW.{c} {same} OLD.{c}" for c in EVENT_COLUMNS]
    )


PG_GUARD = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF SEALING THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
""".replace("SEALING", _sealing_condition("IS NOT DISTINCT FROM"))

SQLITE_GUARD = (
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
       WHEN NOT (%s)
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END"""
    % _sealing_condition("IS"),
    """CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END""",
)

# As 0001 left them, for the downgrade.
PG_GUARD_0001 = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""
SQLITE_GUARD_0001 = (
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END""",
)

UNSEALED = sa.text("seq IS NULL")


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _drop_sqlite_guard():
    # Rebuilding the table (SQLite's batch mode) would drop them anyway; say so.
    op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
    op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")


def upgrade():
    if not _is_postgres():
        _drop_sqlite_guard()
    # Every stored event is a legacy one: the default fills them in as the column is added
    # (on PostgreSQL without rewriting or updating a row), then goes, so that a new event
    # must say which scheme protects it.
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('scheme', sa.String(length=16), nullable=False, server_default='sha256')
        )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('scheme', existing_type=sa.String(length=16), server_default=None)
        batch_op.add_column(sa.Column('nonce', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('event_mac', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('seal_problem', sa.String(length=32), nullable=True))
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=True)
        batch_op.alter_column('previous_hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column('entry_hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column(
            'source_address', new_column_name='source', existing_type=sa.String(length=64)
        )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(
            'ix_audit_events_unsealed',
            ['id'],
            unique=False,
            postgresql_where=UNSEALED,
            sqlite_where=UNSEALED,
        )
    if _is_postgres():
        op.execute(PG_GUARD)
    else:
        for statement in SQLITE_GUARD:
            op.execute(statement)


def downgrade():
    keyed = op.get_bind().execute(
        sa.text("SELECT count(*) FROM audit_events WHERE scheme <> 'sha256' OR seq IS NULL")
    ).scalar()
    if keyed:
        raise RuntimeError(
            f"0008 cannot be undone: {keyed} audit events are keyed (written since the "
            "upgrade) and the schema before it cannot hold or verify them. The audit trail "
            "is never deleted, so this downgrade stops here."
        )
    if not _is_postgres():
        _drop_sqlite_guard()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_unsealed')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column(
            'source', new_column_name='source_address', existing_type=sa.String(length=64)
        )
        batch_op.alter_column('entry_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('previous_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_column('seal_problem')
        batch_op.drop_column('event_mac')
        batch_op.drop_column('nonce')
        batch_op.drop_column('scheme')
    if _is_postgres():
        op.execute(PG_GUARD_0001)
    else:
        for statement in SQLITE_GUARD_0001:
            op.execute(statement)

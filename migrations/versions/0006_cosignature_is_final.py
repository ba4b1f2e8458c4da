"""A co-signature is final too: the signed-note guards also refuse changing or clearing a
note's ``cosigned_at`` once it is set (0003 left it open so that co-signing, which sets it,
could happen after the signature; now only that first setting is allowed).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 01:40:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# As in 0003: the columns a signature fixes (a migration keeps its own copy).
SIGNED_COLUMNS = (
    "encounter_id", "patient_id", "author_id", "kind", "text", "version", "saved_at",
    "saved_by_id", "signed_at", "signed_by_id", "signed_text_sha256", "cosigner_id",
)
COSIGNATURE_CHANGED = {
    "postgresql": "(OLD.cosigned_at IS NOT NULL AND NEW.cosigned_at IS DISTINCT FROM OLD.cosigned_at)",
    "sqlite": "(OLD.cosigned_at IS NOT NULL AND NEW.cosigned_at IS NOT OLD.cosigned_at)",
}


def _pg_function(final_cosignature: bool) -> str:
    changed = [f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in SIGNED_COLUMNS]
    if final_cosignature:
        changed.append(COSIGNATURE_CHANGED["postgresql"])
    return """
CREATE OR REPLACE FUNCTION notes_signed_is_signed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.signed_at IS NULL THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'DELETE' OR (CHANGED_COLUMNS) THEN
        RAISE EXCEPTION 'a signed note cannot be changed or deleted: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
""".replace("CHANGED_COLUMNS", " OR ".join(changed))


def _sqlite_trigger(final_cosignature: bool) -> str:
    changed = [f"NEW.{c} IS NOT OLD.{c}" for c in SIGNED_COLUMNS]
    if final_cosignature:
        changed.append(COSIGNATURE_CHANGED["sqlite"])
    return """CREATE TRIGGER notes_signed_no_update BEFORE UPDATE ON notes
       WHEN OLD.signed_at IS NOT NULL AND (%s)
       BEGIN SELECT RAISE(ABORT, 'a signed note cannot be changed: UPDATE refused'); END""" % (
        " OR ".join(changed)
    )


def _install(final_cosignature: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_function(final_cosignature))
    else:
        op.execute("DROP TRIGGER notes_signed_no_update")
        op.execute(_sqlite_trigger(final_cosignature))


def upgrade():
    _install(final_cosignature=True)


def downgrade():
    _install(final_cosignature=False)

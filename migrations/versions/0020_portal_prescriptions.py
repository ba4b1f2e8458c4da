"""Prescriptions composed in the portal (issue 11): drafts and their elements, the one state
machine for both paths, what was signed (by whom, when, its digest, the alerts and overrides)
made immutable by triggers, printing that forbids transmission, and prescribers' favourites.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 08:50:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# A frozen copy of portal.prescriptions.states' reading of the vendor's two statuses, for the
# rows that exist (written in the vendor's screen); migrations never import app code.
_FROM_TRANSMISSION = {
    "Entered": "draft",
    "Edited": "draft",
    "ReadyToSign": "draft",
    "Requested": "draft",
    "EpcsSigned": "signed",
    "Sending": "sent",
    "eRxSent": "sent",
    "FaxSent": "sent",
    "PharmacyVerified": "pharmacy_verified",
    "Printed": "printed",
    "Error": "error",
    "EpcsError": "error",
    "Deleted": "deleted",
}
_FROM_PHARMACY = {
    "CancelRequested": "cancel_requested",
    "CancelPending": "cancel_requested",
    "Cancelled": "cancelled",
    "CancelDenied": "cancel_denied",
    "FullFill": "filled",
    "PartialFill": "partially_filled",
    "NoFill": "not_filled",
    "Discontinued": "discontinued",
    "Completed": "completed",
    "Changed": "changed",
    "Deleted": "deleted",
}
_GONE_OUT = {"sent", "pharmacy_verified", "printed"}

# What a signature fixes. After signing only the transmission (state, the vendor's statuses
# and id, the error), the pharmacy chosen after a failed transmission, the printing (once),
# the medication link and updated_at may change.
SIGNED_COLUMNS = (
    "patient_id",
    "prescriber_id",
    "origin",
    "encounter_id",
    "drug",
    "rxcui",
    "ndc",
    "dispensable_drug_id",
    "strength",
    "dose_form",
    "route",
    "schedule",
    "ingredient_rxcuis",
    "sig",
    "directions",
    "quantity",
    "dispense_unit",
    "days_supply",
    "refills",
    "substitution_allowed",
    "pharmacist_note",
    "effective_on",
    "written_on",
    "diagnoses",
    "alerts",
    "overrides",
    "signed_at",
    "signed_by_id",
    "digest",
)
PG_GUARDS = """
CREATE FUNCTION prescriptions_signed_is_signed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.signed_at IS NOT NULL OR OLD.printed_at IS NOT NULL THEN
            RAISE EXCEPTION 'a signed prescription cannot be deleted'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.signed_at IS NOT NULL AND (CHANGED_COLUMNS) THEN
        RAISE EXCEPTION 'a signed prescription cannot be changed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.printed_at IS NOT NULL AND (NEW.printed_at IS DISTINCT FROM OLD.printed_at
            OR NEW.print_reason IS DISTINCT FROM OLD.print_reason
            OR NEW.vendor_id IS DISTINCT FROM OLD.vendor_id) THEN
        RAISE EXCEPTION 'a printed prescription is never transmitted or printed again'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER prescriptions_signed_guard BEFORE UPDATE OR DELETE ON prescriptions
    FOR EACH ROW EXECUTE FUNCTION prescriptions_signed_is_signed();
""".replace(
    "CHANGED_COLUMNS", " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in SIGNED_COLUMNS)
)
SQLITE_GUARDS = (
    """CREATE TRIGGER prescriptions_signed_no_update BEFORE UPDATE ON prescriptions
       WHEN OLD.signed_at IS NOT NULL AND (%s)
       BEGIN SELECT RAISE(ABORT, 'a signed prescription cannot be changed'); END"""
    % " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in SIGNED_COLUMNS),
    """CREATE TRIGGER prescriptions_printed_no_send BEFORE UPDATE ON prescriptions
       WHEN OLD.printed_at IS NOT NULL AND (NEW.printed_at IS NOT OLD.printed_at
            OR NEW.print_reason IS NOT OLD.print_reason OR NEW.vendor_id IS NOT OLD.vendor_id)
       BEGIN SELECT RAISE(ABORT,
           'a printed prescription is never transmitted or printed again'); END""",
    """CREATE TRIGGER prescriptions_signed_no_delete BEFORE DELETE ON prescriptions
       WHEN OLD.signed_at IS NOT NULL OR OLD.printed_at IS NOT NULL
       BEGIN SELECT RAISE(ABORT, 'a signed prescription cannot be deleted'); END""",
)


def upgrade():
    with op.batch_alter_table("prescriptions", schema=None) as batch_op:
        batch_op.alter_column("connector", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("vendor_id", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("status", existing_type=sa.String(length=32), nullable=True)
        batch_op.add_column(
            sa.Column("origin", sa.String(length=16), nullable=False, server_default="vendor")
        )
        batch_op.add_column(
            sa.Column("state", sa.String(length=32), nullable=False, server_default="sent")
        )
        batch_op.add_column(sa.Column("encounter_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("dispensable_drug_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("strength", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("dose_form", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("route", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("schedule", sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column("ingredient_rxcuis", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("sig", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("dispense_unit", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column(
                "substitution_allowed", sa.Boolean(), nullable=False, server_default=sa.true()
            )
        )
        batch_op.add_column(sa.Column("pharmacist_note", sa.String(length=210), nullable=True))
        batch_op.add_column(sa.Column("effective_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("diagnoses", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("pharmacy_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("pharmacy_name", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("alerts", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("overrides", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("signed_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("transmission_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("printed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("print_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.create_foreign_key(
            "fk_prescriptions_encounter_id_encounters", "encounters", ["encounter_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_prescriptions_signed_by_id_users", "users", ["signed_by_id"], ["id"]
        )
        batch_op.create_index("ix_prescriptions_encounter", ["encounter_id"])
        # A prescriber's drafts and signed prescriptions (the Rx inbox, open drafts).
        batch_op.create_index("ix_prescriptions_prescriber_state", ["prescriber_id", "state"])

    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, status, medication_status FROM prescriptions"))
    for row_id, status, medication_status in rows.fetchall():
        state = _FROM_TRANSMISSION.get(status or "", "sent")
        if state in _GONE_OUT and medication_status in _FROM_PHARMACY:
            state = _FROM_PHARMACY[medication_status]
        bind.execute(
            sa.text("UPDATE prescriptions SET state = :s WHERE id = :i"), {"s": state, "i": row_id}
        )

    op.create_table(
        "prescription_favorites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("rxcui", sa.String(length=16), nullable=True),
        sa.Column("dispensable_drug_id", sa.String(length=32), nullable=True),
        sa.Column("drug", sa.String(length=300), nullable=False),
        sa.Column("sig", sa.Text(), nullable=True),
        sa.Column("directions", sa.String(length=1000), nullable=True),
        sa.Column("quantity", sa.String(length=32), nullable=True),
        sa.Column("dispense_unit", sa.String(length=32), nullable=True),
        sa.Column("days_supply", sa.Integer(), nullable=True),
        sa.Column("refills", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_prescription_favorites_owner_id_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prescription_favorites"),
        sa.UniqueConstraint("owner_id", "label", name="uq_prescription_favorites_label"),
    )
    op.create_index("ix_prescription_favorites_owner_id", "prescription_favorites", ["owner_id"])

    if bind.dialect.name == "postgresql":
        op.execute(PG_GUARDS)
    else:
        for statement in SQLITE_GUARDS:
            op.execute(statement)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER prescriptions_signed_guard ON prescriptions")
        op.execute("DROP FUNCTION prescriptions_signed_is_signed()")
    else:
        for name in (
            "prescriptions_signed_no_update",
            "prescriptions_printed_no_send",
            "prescriptions_signed_no_delete",
        ):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index("ix_prescription_favorites_owner_id", table_name="prescription_favorites")
    op.drop_table("prescription_favorites")
    # Prescriptions composed here have no vendor id: the vendor path's table cannot hold them.
    op.execute("DELETE FROM prescriptions WHERE origin = 'portal'")
    with op.batch_alter_table("prescriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_prescriptions_prescriber_state")
        batch_op.drop_index("ix_prescriptions_encounter")
        batch_op.drop_constraint("fk_prescriptions_signed_by_id_users", type_="foreignkey")
        batch_op.drop_constraint("fk_prescriptions_encounter_id_encounters", type_="foreignkey")
        for column in (
            "version",
            "print_reason",
            "printed_at",
            "transmission_error",
            "digest",
            "signed_by_id",
            "signed_at",
            "overrides",
            "alerts",
            "pharmacy_name",
            "pharmacy_id",
            "diagnoses",
            "effective_on",
            "pharmacist_note",
            "substitution_allowed",
            "dispense_unit",
            "sig",
            "ingredient_rxcuis",
            "schedule",
            "route",
            "dose_form",
            "strength",
            "dispensable_drug_id",
            "encounter_id",
            "state",
            "origin",
        ):
            batch_op.drop_column(column)
        batch_op.alter_column("status", existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column("vendor_id", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("connector", existing_type=sa.String(length=64), nullable=False)

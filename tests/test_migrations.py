"""The schema comes only from the migrations, and they agree with the models."""

from datetime import UTC, date, datetime

from flask_migrate import check, downgrade, upgrade

from portal.extensions import db


def test_models_and_migrations_agree(app):
    with app.app_context():
        check()  # raises when autogenerate would find a difference


def test_migrations_go_down_and_up_again(app):
    with app.app_context():
        downgrade(revision="base")
        assert db.inspect(db.engine).get_table_names() == ["alembic_version"]
        upgrade()
        assert "appointments" in db.inspect(db.engine).get_table_names()


def test_0004_stops_on_two_notes_of_one_kind_for_an_encounter(app):
    """The unique index of 0004 cannot be built over duplicates: the upgrade says which
    encounters to sort out instead of failing on the index, and goes on once they are."""
    import pytest
    from alembic import command
    from flask import current_app
    from sqlalchemy import select, text

    from portal.auth.models import User
    from tests.charting.vitals_helpers import make_patient

    patient_id = make_patient(app, date(1960, 1, 1))
    with app.app_context():
        config = current_app.extensions["migrate"].migrate.get_config()
        downgrade(revision="0003")
        try:
            author = db.session.scalar(select(User.id).where(User.username == "drlee"))
            now = datetime.now(UTC).replace(tzinfo=None)
            # As 0003 left the tables (the models have since gained columns and indexes).
            encounter_id = db.session.execute(
                text(
                    "INSERT INTO encounters (patient_id, provider_id, kind, occurred_at, "
                    "created_at) VALUES (:patient, :author, 'office', :now, :now) RETURNING id"
                ),
                {"patient": patient_id, "author": author, "now": now},
            ).scalar_one()
            db.session.commit()
            for _ in range(2):
                db.session.execute(
                    text(
                        "INSERT INTO notes (encounter_id, patient_id, author_id, kind, text, "
                        "version, saved_at, created_at) VALUES (:encounter, :patient, "
                        ":author, 'provider', '', 1, :now, :now)"
                    ),
                    {
                        "encounter": encounter_id,
                        "patient": patient_id,
                        "author": author,
                        "now": now,
                    },
                )
            db.session.commit()
            with pytest.raises(RuntimeError, match=rf"encounter {encounter_id} \(provider: 2"):
                command.upgrade(config, "head")
        finally:
            db.session.rollback()
            db.session.execute(
                text("DELETE FROM notes WHERE id > (SELECT MIN(id) FROM notes)")
            )  # a draft: deleting it is what a person sorting them out could do
            db.session.commit()
            db.session.remove()
            upgrade()
        assert "uq_notes_encounter_kind" in {
            index["name"] for index in db.inspect(db.engine).get_indexes("notes")
        }

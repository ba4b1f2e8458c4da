"""The schema comes only from the migrations, and they agree with the models."""

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

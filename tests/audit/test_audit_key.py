"""The audit key lives in the instance config (or the environment), never in the database."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor

from portal import create_app
from portal.config import ensure_instance_config

OLD_CONFIG = "SECRET_KEY = 'an old installation'\nDATA_ENCRYPTION_KEY = 'its data key'\n"


def test_a_new_instance_config_has_a_random_audit_key(tmp_path, monkeypatch):
    monkeypatch.delenv("PORTAL_AUDIT_KEY", raising=False)
    first = create_app({"INSTANCE_PATH": str(tmp_path / "one")})
    other = create_app({"INSTANCE_PATH": str(tmp_path / "two")})
    assert len(first.config["AUDIT_KEY"]) >= 40
    assert first.config["AUDIT_KEY"] != other.config["AUDIT_KEY"]
    again = create_app({"INSTANCE_PATH": str(tmp_path / "one")})
    assert again.config["AUDIT_KEY"] == first.config["AUDIT_KEY"]
    config_file = tmp_path / "one" / "config.py"
    assert config_file.read_text().count("AUDIT_KEY = ") == 1
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600


def test_an_existing_config_without_one_gets_one_appended_once(tmp_path, monkeypatch):
    monkeypatch.delenv("PORTAL_AUDIT_KEY", raising=False)
    instance = tmp_path / "instance"
    instance.mkdir()
    config_file = instance / "config.py"
    config_file.write_text(OLD_CONFIG)
    config_file.chmod(0o600)
    # Several processes starting at once (gunicorn's workers) append one key, not several.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: ensure_instance_config(str(instance)), range(8)))
    text = config_file.read_text()
    assert text.startswith(OLD_CONFIG)  # what was there is kept as it was
    assert text.count("AUDIT_KEY = ") == 1
    app = create_app({"INSTANCE_PATH": str(instance)})
    assert app.config["SECRET_KEY"] == "an old installation"
    assert len(app.config["AUDIT_KEY"]) >= 40
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600


def test_a_key_from_the_environment_wins_and_none_is_added_to_the_file(tmp_path, monkeypatch):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text(OLD_CONFIG)
    digits = "0123456789" * 4  # text, whatever it looks like: not read as a number
    monkeypatch.setenv("PORTAL_AUDIT_KEY", digits)
    app = create_app({"INSTANCE_PATH": str(instance)})
    assert app.config["AUDIT_KEY"] == digits
    assert "AUDIT_KEY" not in (instance / "config.py").read_text()

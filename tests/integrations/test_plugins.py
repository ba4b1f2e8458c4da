"""A connector from another installed package is found through the ``portal.connectors``
entry points: the test installs a tiny distribution (tests/integrations/plugin_dist) into a
folder of its own, with pip, as an admin would install a plugin, and starts the app."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from portal import create_app
from portal.integrations import registry
from tests.support.database import SECRET_KEY

PLUGIN = Path(__file__).resolve().parent / "plugin_dist"


def test_an_installed_plugin_connector_is_registered_when_the_app_starts(
    tmp_path, monkeypatch, signed_in
):
    source = shutil.copytree(PLUGIN, tmp_path / "plugin")  # the build writes beside it
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    assert registry.connector_class("acme-lab") is None
    monkeypatch.syspath_prepend(str(target))
    try:
        create_app(
            {
                "TESTING": True,
                "SECRET_KEY": SECRET_KEY,
                "SQLALCHEMY_DATABASE_URI": "sqlite://",
                "INSTANCE_PATH": str(tmp_path / "instance"),
            }
        )
        plugin = registry.connector_class("acme-lab")
        assert plugin is not None
        assert (plugin.kind, plugin.title) == ("lab", "Acme Reference Laboratory")
        assert plugin in registry.available()
        assert plugin.field("api_key").secret
        assert plugin({}).deliver("order", {}, "key-1") == {"accepted": "key-1"}
        # An admin finds it in the console, and can open its settings form.
        admin = signed_in("admin")
        console = admin.get("/admin/integrations").get_data(as_text=True)
        assert "Acme Reference Laboratory" in console
        form = admin.get("/admin/integrations/acme-lab").get_data(as_text=True)
        assert "Account number" in form and "API key" in form
    finally:
        registry.unregister("acme-lab")

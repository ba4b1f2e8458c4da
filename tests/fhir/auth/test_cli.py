"""``flask api-client register`` / ``disable``: for installations set up from a shell (and
the benchmarks); the same use cases as the admin pages, as the command-line actor."""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.asymmetric import ec

from portal.cli import api_client_disable, api_client_register
from tests.fhir.support import jwks_of, request_token
from tests.support.audit import audit_events


def test_register_prints_the_secret_once_and_it_works(app, client):
    runner = app.test_cli_runner()
    result = runner.invoke(
        api_client_register,
        ["--name", "Nightly export", "--responsible", "drlee", "--scope", "system/*.read"],
    )
    assert result.exit_code == 0, result.output
    client_id = re.search(r"client_id: (\S+)", result.output).group(1)
    secret = re.search(r"client_secret: (\S+)", result.output).group(1)
    assert request_token(client, client_id, secret).status_code == 200
    registered = audit_events(app, "api_client.registered")[-1]
    assert registered.username.startswith("cli:")

    disabled = runner.invoke(api_client_disable, [client_id])
    assert disabled.exit_code == 0 and "Nightly export is disabled." in disabled.output
    assert request_token(client, client_id, secret).status_code == 401


def test_register_with_a_public_key_makes_no_secret(app, tmp_path):
    key_file = tmp_path / "jwks.json"
    key_file.write_text(jwks_of(ec.generate_private_key(ec.SECP384R1()), "k", "ES384"))
    result = app.test_cli_runner().invoke(
        api_client_register,
        ["--name", "Keyed", "--responsible", "admin", "--public-key-file", str(key_file)],
    )
    assert result.exit_code == 0, result.output
    assert "client_secret" not in result.output


def test_refusals_are_said_in_words(app):
    runner = app.test_cli_runner()
    unknown = runner.invoke(api_client_register, ["--name", "X", "--responsible", "nobody"])
    assert unknown.exit_code != 0 and "person responsible" in unknown.output
    bad_scope = runner.invoke(
        api_client_register, ["--name", "X", "--responsible", "admin", "--scope", "patient/*.read"]
    )
    assert bad_scope.exit_code != 0 and "not a scope this server grants" in bad_scope.output
    missing = runner.invoke(api_client_disable, ["no-such-client"])
    assert missing.exit_code != 0 and "No API client" in missing.output

"""Checkpoints outside the database, and what verify makes of them and of the sealer's lag."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from portal.actors import SOURCE_CLI, Actor
from portal.audit import checkpoints, integrity, sealing
from portal.audit import services as audit
from portal.extensions import db
from portal.transaction import use_case
from tests.audit.helpers import events, tamper

TESTER = Actor(id=None, username="tester", source=SOURCE_CLI)


def record_events(app, count: int) -> None:
    with app.app_context():
        for number in range(count):
            with use_case():
                audit.record(TESTER, "test.event", detail=f"event {number}")
        db.session.remove()


def run(app, *args) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def checkpoint_file(app) -> Path:
    with app.app_context():
        return checkpoints.checkpoint_path()


def lines(app) -> list[dict]:
    return [json.loads(line) for line in checkpoint_file(app).read_text().splitlines()]


def test_a_checkpoint_seals_what_is_pending_and_appends_a_signed_line(app):
    record_events(app, 3)
    code, output = run(app, "audit", "checkpoint")
    assert code == 0, output
    path = checkpoint_file(app)
    assert path == Path(app.instance_path) / "audit-checkpoints.jsonl"
    assert "Checkpoint #3 of " in output and str(path) in output
    assert [e.seq for e in events(app)] == [1, 2, 3]
    (line,) = lines(app)
    assert set(line) == {"seq", "entry_hash", "at", "key_id", "mac"}
    assert line["seq"] == 3 and line["entry_hash"] == events(app)[-1].entry_hash
    with app.app_context():
        keys = integrity.current_keys()
    signed = {key: line[key] for key in ("at", "entry_hash", "key_id", "seq")}
    assert line["mac"] == integrity.checkpoint_mac(keys, signed)
    assert line["key_id"] == keys.key_id and keys.key_id not in app.config["AUDIT_KEY"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_checkpoints_are_only_ever_appended(app):
    record_events(app, 2)
    run(app, "audit", "checkpoint")
    first = checkpoint_file(app).read_bytes()
    record_events(app, 2)
    run(app, "audit", "checkpoint")
    after = checkpoint_file(app).read_bytes()
    assert after.startswith(first) and after.count(b"\n") == 2
    assert [line["seq"] for line in lines(app)] == [2, 4]


def test_the_worker_does_not_repeat_an_unchanged_head(app):
    record_events(app, 1)
    with app.app_context():
        assert sealing.checkpoint(skip_unchanged=True).seq == 1
        assert sealing.checkpoint(skip_unchanged=True) is None
        db.session.remove()
    assert len(lines(app)) == 1


def test_nothing_to_checkpoint_on_an_empty_trail(app):
    code, output = run(app, "audit", "checkpoint")
    assert code == 0 and "empty" in output
    assert not checkpoint_file(app).exists()


def test_the_checkpoint_file_can_live_elsewhere(app, tmp_path):
    app.config["AUDIT_CHECKPOINT_PATH"] = str(tmp_path / "elsewhere" / "checkpoints.jsonl")
    record_events(app, 1)
    run(app, "audit", "checkpoint")
    assert (tmp_path / "elsewhere" / "checkpoints.jsonl").exists()
    code, output = run(app, "audit", "verify")
    assert code == 0 and "Checkpoints: 1 in " + str(tmp_path / "elsewhere") in output


def test_verify_passes_through_every_checkpoint(app):
    for _ in range(3):
        record_events(app, 2)
        run(app, "audit", "checkpoint")
    code, output = run(app, "audit", "verify")
    assert code == 0, output
    assert "Checkpoints: 3 in" in output and "the newest being #6" in output


def _append_raw(app, text: str) -> None:
    with checkpoint_file(app).open("a") as handle:
        handle.write(text + "\n")


def _first_problem(output: str) -> str:
    return output.split("Audit trail BROKEN: ", 1)[1].splitlines()[0]


def test_verify_names_a_forged_checkpoint_line(app):
    record_events(app, 2)
    run(app, "audit", "checkpoint")
    forged = {**lines(app)[0], "seq": 1, "mac": "0" * 64}
    _append_raw(app, json.dumps(forged))
    code, output = run(app, "audit", "verify")
    assert code == 1
    assert _first_problem(output) == (
        f"checkpoint line 2 of {checkpoint_file(app)} does not verify: it was forged or altered"
    )


def test_verify_says_when_checkpoints_were_written_with_another_key(app):
    record_events(app, 2)
    with app.app_context():
        head = sealing.checkpoint()
        other = integrity.keys_from("a different installation's audit key, long enough")
        checkpoints.append(checkpoints.checkpoint_path(), other, head.seq, head.entry_hash, head.at)
    code, output = run(app, "audit", "verify")
    assert code == 1
    assert _first_problem(output).startswith(
        f"checkpoint line 2 of {checkpoint_file(app)} was written with another audit key "
        f"(key id {other.key_id}; "
    )


def test_verify_names_a_garbled_checkpoint_line(app):
    record_events(app, 1)
    run(app, "audit", "checkpoint")
    _append_raw(app, '{"seq": 3, "entry_hash"')
    code, output = run(app, "audit", "verify")
    assert code == 1
    assert (
        _first_problem(output) == f"checkpoint line 2 of {checkpoint_file(app)} is not a checkpoint"
    )


def test_verify_names_an_event_that_differs_from_its_checkpoint(app):
    """A checkpoint signed with the key (a restored backup sealed anew, or a key holder
    rewriting): the chain must still have the checkpoint's hash at its seq."""
    record_events(app, 3)
    with app.app_context():
        keys = integrity.current_keys()
        checkpoints.append(checkpoints.checkpoint_path(), keys, 2, "a" * 64, "2026-01-01T00:00:00Z")
        sealing.seal_all()
        db.session.remove()
    second = events(app)[1]
    code, output = run(app, "audit", "verify")
    assert code == 1
    assert _first_problem(output) == (
        f"event #2 (id {second.id}) does not match the checkpoint of 2026-01-01T00:00:00Z "
        "(line 1): the chain was rewritten"
    )


# --- no checkpoint -------------------------------------------------------------------------


def test_no_checkpoint_on_a_young_chain_is_a_warning(app):
    """A new installation before the worker's first checkpoint. It is also the one window
    in which removing the newest events goes unseen: the warning says there is no
    checkpoint to hold the chain to."""
    record_events(app, 3)
    with app.app_context():
        sealing.seal_all()
        db.session.remove()
    tamper(app, "DELETE FROM audit_events WHERE seq = 3")
    code, output = run(app, "audit", "verify")
    assert code == 0, output
    assert "Warning: no checkpoint yet (" in output and "less than 10 minutes ago" in output


def test_no_checkpoint_once_the_chain_is_older_than_an_interval_is_a_problem(app):
    app.config.update(AUDIT_CHECKPOINT_MINUTES=0, AUDIT_SEAL_GRACE_MINUTES=0)
    record_events(app, 2)
    with app.app_context():
        sealing.seal_all()
        db.session.remove()
    code, output = run(app, "audit", "verify")
    assert code == 1
    assert _first_problem(output).startswith(
        f"no checkpoint ({checkpoint_file(app)} is missing or empty) though the chain began "
        "more than 0 minutes ago: removing the newest events could not be detected"
    )


def test_an_event_waiting_longer_than_the_grace_means_the_sealer_is_not_running(app):
    record_events(app, 2)
    app.config["AUDIT_SEAL_GRACE_MINUTES"] = 0
    code, output = run(app, "audit", "verify")
    assert code == 1
    assert _first_problem(output) == (
        "2 events wait to be sealed, the oldest for 0 minutes: the sealer (`flask worker`) is "
        "not running"
    )
    app.config["AUDIT_SEAL_GRACE_MINUTES"] = 5
    code, output = run(app, "audit", "verify")
    assert code == 0 and "3 awaiting the sealer, the oldest since " in output  # + its own


@pytest.mark.parametrize("secret", [None, "", "too short"])
def test_an_audit_key_too_short_to_be_secret_is_refused(app, secret):
    app.config["AUDIT_KEY"] = secret
    with app.app_context(), pytest.raises(RuntimeError, match="AUDIT_KEY must be"), use_case():
        audit.record(TESTER, "test.event")

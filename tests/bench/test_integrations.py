"""The integrations benchmark's verdicts, and its exactly-once check (a run that loses or
doubles a message must fail whatever its speed)."""

from bench.integrations import _exactly_once, signed_webhook
from bench.report import Result, budget
from portal.integrations.dosespot.webhooks import verify_webhook


def row(name, *, rate=None, p95=None, failures=0):
    return Result(
        benchmark=name,
        database="PostgreSQL",
        rows=0,
        requests=100,
        p50_ms=None if p95 is None else p95 / 2,
        p95_ms=p95,
        p99_ms=None if p95 is None else p95 * 2,
        floor_p95_ms=None,
        date="2026-12-06 03:00 UTC",
        failures=failures,
        first_failure="lost" if failures else None,
        throughput_per_s=rate,
    )


def test_four_no_op_workers_must_deliver_200_messages_a_second():
    assert budget(row("outbox delivery, no-op, 4 workers", rate=200.0), [])[1] == "pass"
    assert budget(row("outbox delivery, no-op, 4 workers", rate=150.0), [])[1] == "**FAIL**"
    assert budget(row("outbox delivery, no-op, 1 workers", rate=10.0), [])[1] == "—"
    lost = row("outbox delivery, sandbox, 2 workers", rate=999.0, failures=1)
    assert budget(lost, [])[1].startswith("INVALID")


def test_latency_and_webhook_budgets():
    assert budget(row("outbox commit-to-delivery latency", p95=900.0), [])[1] == "pass"
    assert budget(row("outbox commit-to-delivery latency", p95=1000.0), [])[1] == "**FAIL**"
    assert budget(row("webhook intake, 4 clients", rate=300.0, p95=50.0), [])[1] == "pass"
    assert budget(row("webhook intake, 4 clients", rate=299.0, p95=10.0), [])[1] == "**FAIL**"
    assert budget(row("webhook intake, 4 clients", rate=900.0, p95=51.0), [])[1] == "**FAIL**"
    # With more clients than server threads, latency is queueing: the rate alone is held.
    assert budget(row("webhook intake, 16 clients", rate=900.0, p95=90.0), [])[1] == "pass"
    assert budget(row("webhook intake, 16 clients", rate=299.0, p95=9.0), [])[1] == "**FAIL**"


def test_exactly_once_names_lost_retried_and_doubled_messages():
    keys = [f"t:{n}" for n in range(3)]
    assert _exactly_once(3, 3, 3, keys, "t") == []
    assert _exactly_once(3, 3, 3, [*keys, "t:1"], "t") == ["1 deliveries repeated by the connector"]
    assert _exactly_once(3, 3, 2, keys[:2], "t") == [
        "1 messages not delivered in exactly one attempt",
        "the connector delivered 2 distinct messages of 3",
    ]
    assert "2 messages in the outbox, 3 written" in _exactly_once(3, 2, 2, keys, "t")


def test_the_load_generator_signs_as_the_sandbox_does():
    body = b'{"EventType":"PrescriptionResult","Data":{}}'
    headers = signed_webhook("evt-1", body, secret="s" * 32)
    now = float(headers["X-Sandbox-Timestamp"])
    assert verify_webhook(headers, body, "s" * 32, now) == "evt-1"

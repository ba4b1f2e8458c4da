"""``python -m bench.labs_filing sqlite|postgresql [messages] [--profile]``: the labs filer
alone, in this process, with no socket and no listener: the bench's ORU^R01 messages stored
first (``receive_many``), then filed by ``services.file_many`` in batches of the listener's
``FILE_BATCH``. Prints the wall rate, this process's CPU per message and the SQL
statements per message (cursor executions; an executemany counts once), and with
``--profile`` the cProfile of the filing by cumulative time: where a message's filing goes,
beside ``bench.labs_ingest``'s whole-listener figures on a busy machine."""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time

from sqlalchemy import event

from bench import labs_ingest
from bench.databases import (
    DEFAULT_POSTGRES_SERVER,
    app_for,
    fresh_postgres_url,
    fresh_sqlite_url,
)


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    profile = "--profile" in args
    args = [arg for arg in args if arg != "--profile"]
    dialect = args[0] if args else "sqlite"
    count = int(args[1]) if len(args) > 1 else 2000
    if dialect == "sqlite":
        url = fresh_sqlite_url("portal-labs-filing")
    else:
        url = fresh_postgres_url(DEFAULT_POSTGRES_SERVER, "portal_bench_labs_filing")
    people = labs_ingest._seed(url)
    from portal.extensions import db
    from portal.labs import services
    from portal.labs.hl7 import oru
    from portal.labs.listener import FILE_BATCH

    with app_for(url).app_context():
        raws = [labs_ingest._message(n, people[n % len(people)], "lf")[1:-2] for n in range(count)]
        items = [(raw, oru.read_message(raw)) for raw in raws]
        answers = []
        for start in range(0, count, 100):
            answers += services.receive_many(items[start : start + 100])
        ids = [
            (answer.message_id, reading)
            for answer, (_raw, reading) in zip(answers, items, strict=True)
        ]
        batches = [ids[start : start + FILE_BATCH] for start in range(0, count, FILE_BATCH)]
        statements = [0]

        @event.listens_for(db.engine, "before_cursor_execute")
        def count_statement(*_args, **_kwargs):
            statements[0] += 1

        profiler = cProfile.Profile() if profile else None
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        for batch in batches:
            outcomes = services.file_many(batch)
            assert set(outcomes.values()) == {"processed"}, outcomes
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    print(
        f"{dialect}: {count} messages filed in {wall:.2f} s ({count / wall:,.0f}/s), "
        f"{cpu * 1000 / count:.3f} ms CPU a message, {statements[0] / count:.2f} statements "
        f"a message (batches of {FILE_BATCH})"
    )
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
        print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())

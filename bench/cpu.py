"""CPU accounting: how busy the machine is, and how much CPU a process has used.

Wall-clock latencies on a shared machine mix our cost with everyone else's; the worker's own
CPU time per request does not, so the report gives both, and the run waits for a quiet
moment before each benchmark.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine since boot, in ticks."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def busy_fraction(since: tuple[int, int], until: tuple[int, int]) -> float:
    busy = until[0] - since[0]
    total = until[1] - since[1]
    return busy / total if total else 0.0


def other_fraction(since: tuple[int, int], until: tuple[int, int], ours_seconds: float) -> float:
    """Share of the machine's CPU that processes other than ours used between two samples
    (the database server counts as "other": it also serves everyone else)."""
    total = until[1] - since[1]
    if not total:
        return 0.0
    others = (until[0] - since[0]) - ours_seconds * TICKS
    return max(0.0, others / total)


def own_cpu_seconds() -> float:
    """CPU time of this (the benchmark client's) process."""
    times = os.times()
    return times.user + times.system


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of one process (all its threads), in seconds."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def wait_for_quiet(max_seconds: float, threshold: float, log) -> float:
    """Wait (at most ``max_seconds``) until the machine is under ``threshold`` busy for two
    one-second samples in a row; returns the last sample's busy fraction."""
    deadline = time.monotonic() + max_seconds
    quiet_samples = 0
    announced = False
    fraction = 0.0
    while True:
        before = machine_jiffies()
        time.sleep(1)
        fraction = busy_fraction(before, machine_jiffies())
        quiet_samples = quiet_samples + 1 if fraction < threshold else 0
        if quiet_samples >= 2 or time.monotonic() >= deadline:
            return fraction
        if not announced and fraction >= threshold and max_seconds > 2:
            log(f"    waiting for a quieter machine (CPU {fraction:.0%} busy) ...")
            announced = True

"""Benchmarks of Practice Portal: seeded data at scale, latency and throughput reports.

Run with ``make bench`` (``python -m bench``); ``python -m bench --help`` lists the options.
Seeded databases are cached under ``bench/out/`` (git-ignored) so reruns are quick.
"""

"""Demo data: a clinic, its staff, patients, a schedule and charts, for `flask seed-demo`
and the benchmarks. Deterministic for a seed. Never used by the portal itself."""

"""Demo data: deterministic synthetic inputs (e.g. genuine DBN trade files) for demos, tests and benchmarks."""

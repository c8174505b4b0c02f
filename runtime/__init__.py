"""Everything that touches the world: config snapshot, storage, ingest, derived tables, charts, CLI.

Kept import-free on purpose: `python -m runtime.dev` must run with the bare system Python before the
virtual environment exists.
"""

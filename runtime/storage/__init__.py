"""DATA_ROOT layout, atomic file writes and the DuckDB registry."""

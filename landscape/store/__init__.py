"""Persistence: the run store's schema and its reader/writer (chunked Zarr), sweeps of stores,
the integrity check and the writer's lock. It reads and writes arrays and configs; it never
builds an engine."""

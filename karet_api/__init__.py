"""Karet's HTTP API as a thin FastAPI facade over ``karet_defs`` and Dagster's instance."""

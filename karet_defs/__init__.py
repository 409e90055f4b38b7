"""Karet on Dagster: the domain (config, expressions, engine, store) and its Dagster adapters."""

"""Dagster adapters over the domain: resources, generated assets and checks, jobs, and their assembly."""

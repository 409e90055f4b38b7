"""The pipeline.json model: parse, upgrade legacy configs, validate."""

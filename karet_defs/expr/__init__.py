"""Expressions: compile the pipeline.json AstNode language and its lookups into Polars expressions."""

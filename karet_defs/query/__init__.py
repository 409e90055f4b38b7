"""The read side: SQL over a pipeline's tables through an embedded, locked-down DuckDB (SPEC §8).

``datasets`` turns one version of a Delta table into an Arrow dataset, ``engine`` runs one read-only
statement over a pipeline's datasets, ``saved`` keeps named queries beside the pipeline's config, and
``names`` holds the relation and namespace names tables are known by.
"""

"""Change safety: a pipeline's config history, its promotion through environments, portable versions."""

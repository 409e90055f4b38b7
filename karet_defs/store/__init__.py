"""Object storage: one interface, a local-directory and an S3 implementation, and the key layout."""

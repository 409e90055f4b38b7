"""The transform engine: raw files → evaluated mappings → Hive-partitioned Parquet in the warehouse."""

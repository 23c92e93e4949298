"""Configuration: the schema, its validators, and the typed sections built once."""

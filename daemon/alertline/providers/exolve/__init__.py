"""MTS Exolve: voice messages, their wire format and the CLI."""

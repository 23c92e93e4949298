"""Daemons sharing one store: membership, leases, take-over (see docs/operations.md)."""

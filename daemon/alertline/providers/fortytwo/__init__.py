"""Fortytwo: voice jobs and their wire format."""

"""Tests of the store: the conformance suite every implementation passes."""

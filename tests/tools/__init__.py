"""Tests of the maintainer tools in ``tools/``."""

"""Maintainer tools (release checks); not part of the installed library."""

"""alertline benchmarks: ``make bench`` (``python -m bench``)."""

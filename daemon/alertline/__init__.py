"""alertline: turn alerts into phone calls and SMS."""

__version__ = "0.1.0"

"""``python -m alertline``: the same as the ``alertline`` command."""

from __future__ import annotations

import sys

from alertline.cli.main import main

if __name__ == "__main__":
    sys.exit(main())

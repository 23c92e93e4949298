"""``alertline hash-password``: print a password hash for the web page's ``web.users``."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from alertline.http.web.passwords import hash_password

MIN_LENGTH = 10


def add_web_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``hash-password`` sub-command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "hash-password", help="print a password hash for web.users (reads the password from "
        "the terminal, or one line from standard input)")
    return parser


def hash_password_command() -> int:
    """Read a password (twice on a terminal), print its hash; 2 if it is unusable."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            sys.stderr.write("error: the two passwords differ\n")
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_LENGTH:
        sys.stderr.write(f"error: use at least {MIN_LENGTH} characters\n")
        return 2
    sys.stdout.write(hash_password(password) + "\n")
    return 0

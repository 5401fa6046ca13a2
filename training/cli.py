"""What the command-line entry points share: errors as one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

__all__ = ["OneLineParser", "fail"]


def fail(command: str, message: str) -> NoReturn:
    """Print ``COMMAND: error: MESSAGE`` on stderr and exit with status 2 (bad input, nothing done)."""
    print(f"{command}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (`fail`, named by ``command``) and exit status 2."""

    def __init__(self, command: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.command = command

    def error(self, message: str) -> NoReturn:
        fail(self.command, message)

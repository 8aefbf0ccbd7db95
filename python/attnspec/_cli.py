"""What the Python subcommands of the attnspec CLI (reproduce, report, demo) share: argparse usage
errors as one line, and the mapping of failures to exit codes (2 bad input, 130 interrupted)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable


class UsageError(Exception):
    """A command-line usage error: one line on stderr, exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like the C++ CLI's usage errors
        raise UsageError(message)


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Runs ``body`` and turns its failures into one stderr line and the CLI's exit codes."""
    try:
        from ._core import InputError
    except ImportError as e:  # pragma: no cover - a broken install
        print(f"attnspec: error: the attnspec package is not usable ({e})", file=sys.stderr)
        return 2
    try:
        return body()
    except UsageError as e:
        print(f"attnspec: error: {prog}: {e}", file=sys.stderr)
        return 2
    except InputError as e:
        print(f"attnspec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"attnspec: {str(e) or 'interrupted'}", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        print(f"attnspec: error: {prog} needs the Python package {e.name!r} (pip install {e.name})", file=sys.stderr)
        return 2

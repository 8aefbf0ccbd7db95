"""What the Python subcommands of the attnspec CLI (reproduce, report, demo) share: argparse usage
errors as one line, the engine's options as the option table declares them, and the mapping of
failures to exit codes (2 bad input, 130 interrupted)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence


class UsageError(Exception):
    """A command-line usage error: one line on stderr, exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like the C++ CLI's usage errors
        raise UsageError(message)


def add_engine_option(parser: argparse.ArgumentParser, name: str, metavar: str | None = None) -> None:
    """Adds ``--name``, an option of ``attnspec analyze``, with the option table's help, default and
    check (_core.options()), so a Python subcommand that passes it on says what the engine says."""
    from . import _core

    o = next(o for o in _core.options() if o["name"] == name and "analyze" in o["commands"])
    if o["type"] == "flag":
        parser.add_argument(f"--{name}", action="store_true", help=o["help"])
        return

    def value(text: str):
        if o["type"] != "int":
            return text
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"an integer is needed (got '{text}')") from None
        if o["min"] is not None and v < o["min"]:
            raise argparse.ArgumentTypeError(f"must be at least {o['min']} (got '{text}')")
        return v

    parser.add_argument(f"--{name}", type=value, default=o["default"], metavar=metavar, help=o["help"])


def run_command(prog: str, parser: Callable[[], argparse.ArgumentParser], body: Callable[[argparse.Namespace], int],
                argv: Optional[Sequence[str]] = None) -> int:
    """The entry point of a subcommand: parses ``argv`` (default: sys.argv[1:]) with ``parser()``,
    runs ``body(args)`` and turns failures into one stderr line and the CLI's exit codes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from ._core import InputError
    except ImportError as e:  # pragma: no cover - a broken install
        print(f"attnspec: error: the attnspec package is not usable ({e})", file=sys.stderr)
        return 2
    try:
        return body(parser().parse_args(argv))
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

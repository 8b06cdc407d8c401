"""The command line: parse, call the library, print. Nothing else lives here.

Each command is a module in :mod:`stackmeta.commands` with ``register(subparsers, common)``
that adds its parser and sets ``func(args, output) -> int`` as the parser's default.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from stackmeta import __version__
from stackmeta.console import Output
from stackmeta.credentials import redact
from stackmeta.errors import StackmetaError

# One line a command; the order is the order of `stackmeta --help`.
COMMANDS = (
    "export",
    "show",
    "history",
    "which",
    "diff",
    "lock",
    "check",
    "snapshot",
    "build",
    "publish",
    "resolve",
    "env",
)


def common_options() -> argparse.ArgumentParser:
    """Options every command takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--locks-dir", type=Path, default=Path("locks"),
        help="folder of the release records and locks (default: ./locks)",
    )
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress, no chatter")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    return common


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of *only* that one (start-up: a command imports only
    what it uses)."""
    parser = argparse.ArgumentParser(
        prog="stackmeta",
        description="Turn a CMSSW release's Python stack into locks and metapackages.",
    )
    parser.add_argument("--version", action="version", version=f"stackmeta {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = common_options()
    for name in COMMANDS if only is None else (only,):
        module = importlib.import_module(f"stackmeta.commands.{name}")
        module.register(subparsers, common)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command named by *argv*, when it is the first word and a known one."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS and argv and argv[0] == first else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    output = Output(json_mode=args.json, quiet=args.quiet)
    warnings = _Warnings(output)  # what the library logs as a warning is printed as one
    logging.getLogger("stackmeta").addHandler(warnings)
    try:
        return int(args.func(args, output))
    except StackmetaError as exc:
        if args.debug:
            return _traceback(exc.exit_code)
        output.err.print(f"error: {exc}", markup=False, style="red", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.debug:
            return _traceback(130)
        output.err.print("interrupted: nothing half-written was left behind", markup=False)
        return 130
    except Exception:  # a bug: its traceback, as Python would print it, but never a password
        return _traceback(1)
    finally:
        logging.getLogger("stackmeta").removeHandler(warnings)


def _traceback(code: int) -> int:
    """The traceback of the exception being handled on stderr, credentials redacted; *code*."""
    import traceback

    sys.stderr.write(redact(traceback.format_exc()))
    return code


class _Warnings(logging.Handler):
    """The library's warnings (the ``stackmeta`` logger), printed as ``warning: ...`` lines."""

    def __init__(self, output: Output) -> None:
        super().__init__(logging.WARNING)
        self.output = output

    def emit(self, record: logging.LogRecord) -> None:
        self.output.warn(redact(record.getMessage()))


def entrypoint() -> None:
    code = main()
    _quick_exit(code)


def _quick_exit(code: int) -> None:
    """Exit as ``sys.exit`` would, but without freeing every object one by one: a check holds
    a few hundred thousand (its pages), whose teardown takes ~0.1 s of a 1 s command. The
    exit handlers run first (caches written, temporary folders removed, as at a normal exit),
    the standard streams are flushed, then the process ends (as mypy ends its runs)."""
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # not CPython: the normal way
        sys.exit(code)
    try:
        run_exit_handlers()
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # a reader that went away (| head): nothing more to say to it
        os._exit(code or 1)
    os._exit(code)

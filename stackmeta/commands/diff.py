"""stackmeta diff: what changed between two stacks."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from stackmeta.console import Output
from stackmeta.errors import UsageError
from stackmeta.locks import sides
from stackmeta.locks.diff import diff, render_markdown, render_text


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "diff", parents=[common],
        help="compare two releases, a release and an environment, or a release and a lock file",
        description=(
            "Compare two stacks. Each side is a release with a record in --locks-dir, a "
            "requirements/constraints file (.txt) or a PEP 751 lock (.toml). With --env, the "
            "second side is an installed environment."
        ),
    )
    p.add_argument("old", help="release name or file")
    p.add_argument("new", nargs="?", help="release name or file (omit with --env)")
    p.add_argument(
        "--env", nargs="?", const="", metavar="PYTHON",
        help="compare with what an interpreter has installed (default: the active virtualenv's "
             "python, else python3)",
    )
    p.add_argument("--format", choices=("text", "markdown"), default="text")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when the stacks differ")
    p.set_defaults(func=run)


def _env_python(given: str) -> str:
    if given:
        return given
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        return str(Path(venv) / "bin" / "python")
    return "python3"


def run(args: argparse.Namespace, output: Output) -> int:
    if args.env is not None:
        if args.new is not None:
            raise UsageError("give one release with --env (the environment is the second side)")
        new = sides.from_environment(_env_python(args.env))
        # made by 'stackmeta env' from this release: compare with the set it was made from,
        # so the diff shows exactly the user's overrides, additions and moves
        base = sides.from_nearest(args.locks_dir, args.old) if new.made_from == args.old else None
        old = base or sides.resolve_side(args.old, args.locks_dir)
        old, new = sides.like_with_like(old, new)
    elif args.new is None:
        raise UsageError("stackmeta diff needs two sides: OLD NEW, or OLD --env")
    else:
        old = sides.resolve_side(args.old, args.locks_dir)
        new = sides.resolve_side(args.new, args.locks_dir)
    result = diff(old, new)
    if args.json:
        output.json(result.to_json())
    elif args.format == "markdown":
        output.result(render_markdown(result).rstrip("\n"))
    else:
        output.result(render_text(result), markup=True)
    return 1 if args.exit_code and not result.empty else 0

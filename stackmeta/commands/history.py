"""stackmeta history PACKAGE: the version each release ships, and the release where it changed."""

from __future__ import annotations

import argparse

from stackmeta.console import Output
from stackmeta.errors import UsageError
from stackmeta.locks import history


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "history", parents=[common], help="the version of a package each release ships, and where it changed",
        description="Read the committed constraints locks (locks/all/, every release of the cmsdist history) "
                    "and print, in release order, each run of releases that ship one version of PACKAGE.",
    )
    add_selection(p)
    p.add_argument("package", help="a PyPI project name, e.g. numpy")
    p.set_defaults(func=run)


def add_selection(p: argparse.ArgumentParser) -> None:
    """The options history and which share: which locks they read."""
    p.add_argument("--python", type=int, choices=(2, 3),
                   help="the Python 2 or 3 stack of each release (default: each release's default stack)")
    p.add_argument("--everything", action="store_true",
                   help="also the flavours of releases (_HLT, ...) and the tags of their builds (-tool-conf)")
    p.add_argument("--match", metavar="GLOB", action="append", default=[],
                   help="only releases matching this pattern, e.g. 'CMSSW_13_*' (repeatable)")


def selected(args: argparse.Namespace) -> list[history.Lock]:
    import fnmatch

    locks = history.select(history.load(args.locks_dir), python=args.python, everything=args.everything)
    if args.match:
        locks = [lock for lock in locks if any(fnmatch.fnmatchcase(lock.release, m) for m in args.match)]
    if not locks:
        raise UsageError(f"no release locks in {history.folder(args.locks_dir)} match "
                         f"{' '.join(args.match) or 'the selection'}: check --match/--python")
    return locks


def run(args: argparse.Namespace, output: Output) -> int:
    locks = selected(args)
    spans = history.history(locks, args.package)
    if not spans:
        raise UsageError(f"no release of the {len(locks)} read ships {args.package} "
                         f"({locks[0].release} .. {locks[-1].release})")
    if output.json_mode:
        output.json({
            "package": args.package, "releases": len(locks),
            "spans": [{"version": s.version, "first": s.first, "last": s.last, "releases": s.releases}
                      for s in spans],
        })
        return 0
    for span in spans:
        what = span.version if span.version is not None else "not shipped"
        where = span.first if span.first == span.last else f"{span.first} .. {span.last}"
        output.result(f"{what:>16}  {where} ({span.releases} release{'s' if span.releases > 1 else ''})")
    return 0

"""stackmeta export: a release's manifest -> locks/<name>.txt and locks/<name>.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from stackmeta.console import Output
from stackmeta.export import export


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "export", parents=[common], help="export a release's constraints lock and record",
        description="Read a release's Python stack from cmsdist (a clone read at tag "
                    "REL/<release>/<arch>, or a folder laid out like it) or from pip freeze output, "
                    "and write locks/<name>.txt and locks/<name>.json.",
    )
    p.add_argument("release", help="the release, e.g. CMSSW_14_0_0")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--cmsdist", type=Path, metavar="PATH",
                        help="a cmsdist git clone (bare or not), a folder laid out like it, "
                             "or a folder of <RELEASE>__<ARCH> folders")
    source.add_argument("--from-freeze", type=Path, metavar="FILE",
                        help="the output of 'pip freeze' or 'pip list --format=json' in the release")
    p.add_argument("--arch", action="append", default=[], metavar="ARCH",
                   help="the SCRAM_ARCH (repeat for one lock over several arches; "
                        "default: the release's only arch)")
    p.add_argument("--python", metavar="2|3|X.Y.Z",
                   help="with --cmsdist: the stack, 2 or 3 (default: Python 3 if the release ships "
                        "Python 3 packages, else 2); with --from-freeze: the interpreter version")
    p.add_argument("--version", dest="metapackage_version", metavar="V",
                   help="the metapackage version, for release names without a standard mapping")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, output: Output) -> int:
    progress = output.progress()
    try:
        done = export(
            args.release, locks_dir=args.locks_dir, cmsdist=args.cmsdist, from_freeze=args.from_freeze,
            arches=args.arch, python=args.python, version=args.metapackage_version, progress=progress,
        )
    finally:
        progress.done()
    rel = done.release
    for problem in rel.problems:
        output.warn(f"{problem.where}: {problem.message}" if problem.where else problem.message)
    pinned = sum(1 for p in rel.packages if p.version is not None)
    if output.json_mode:
        output.json({
            "lock": done.lock_name, "constraints": str(done.constraints), "record": str(done.record),
            "release": rel.release, "arches": list(rel.arches), "python": str(rel.python),
            "packages": len(rel.packages), "pins": pinned, "unshipped": len(rel.unshipped),
            "problems": len(rel.problems), "kept_sections": list(done.kept_sections),
        })
        return 0
    output.result(
        f"{done.constraints}: {pinned} pins of {rel.release} ({', '.join(rel.arches) or 'no arch'}, "
        f"Python {rel.python}); record {done.record}"
    )
    if rel.unshipped:
        output.info(f"{len(rel.unshipped)} pins of pip/requirements.txt are not shipped "
                    "(listed in the record)")
    if done.kept_sections:
        output.info(f"pins unchanged: kept {', '.join(done.kept_sections)} of the old record")
    return 0

"""stackmeta export: a release's manifest -> locks/<name>.txt and locks/<name>.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from stackmeta.console import Output
from stackmeta.errors import ManifestError, UsageError
from stackmeta.locks.batch import ARCH_POLICIES, Summary, default_workers, export_all
from stackmeta.locks.export import export


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "export", parents=[common], help="export a release's constraints lock and record",
        description="Read a release's Python stack from cmsdist (a clone read at tag "
                    "REL/<release>/<arch>, or a folder laid out like it) or from pip freeze output, "
                    "and write locks/<name>.txt and locks/<name>.json.",
    )
    p.add_argument("release", nargs="?", help="the release, e.g. CMSSW_14_0_0 (or --all)")
    p.add_argument("--all", action="store_true",
                   help="export every release tag REL/<release>/<arch> of the --cmsdist clone (or every "
                        "<RELEASE>__<ARCH> folder), skipping records already up to date with the tag")
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
                        "Python 3 packages, else 2; with --all also 'both': each release's default stack "
                        "and its other one where it ships one); with --from-freeze: the interpreter version")
    p.add_argument("--version", dest="metapackage_version", metavar="V",
                   help="the metapackage version, for release names without a standard mapping")
    batch = p.add_argument_group("with --all")
    batch.add_argument("--match", action="append", default=[], metavar="GLOB",
                       help="only releases matching this pattern, e.g. 'CMSSW_14_*' (repeatable); with "
                            "--all, --arch also takes patterns ('el9_*')")
    batch.add_argument("--arch-policy", choices=ARCH_POLICIES, default="merge",
                       help="merge: one record per release over all its arches, with markers (default); "
                            "each: one record per tag, named <release>__<arch>")
    batch.add_argument("--force", action="store_true", help="export again records that are up to date")
    batch.add_argument("--locks-only", action="store_true",
                       help="write the constraints locks alone, no records (locks/all/: every release's "
                            "lock, small enough to commit; a record is one 'stackmeta export RELEASE' away)")
    batch.add_argument("--jobs", type=int, metavar="N",
                       help=f"worker processes (default: the CPUs available, {default_workers()} here)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, output: Output) -> int:
    if args.all:
        return run_all(args, output)
    if args.release is None:
        raise UsageError("give a RELEASE, or --all for every release tag of the --cmsdist clone")
    if args.match or args.force or args.jobs is not None or args.arch_policy != "merge" or args.locks_only:
        raise UsageError("--match, --arch-policy, --force, --locks-only and --jobs go with --all")
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


def run_all(args: argparse.Namespace, output: Output) -> int:
    if args.release is not None:
        raise UsageError(f"give a RELEASE ({args.release}) or --all, not both")
    if args.cmsdist is None:
        raise UsageError("--all reads a --cmsdist clone or folder, not --from-freeze")
    if args.metapackage_version:
        raise UsageError("--version needs a RELEASE: each release has its own version")
    if args.python not in (None, "2", "3", "both"):
        raise UsageError(f"--python {args.python}: with --all give 2, 3 or both (the stacks to export)")
    summary = export_all(
        args.cmsdist, locks_dir=args.locks_dir, match=args.match, arches=args.arch, policy=args.arch_policy,
        python_major=None if args.python in (None, "both") else int(args.python), force=args.force,
        workers=args.jobs, progress=output.progress(), both=args.python == "both",
        with_record=not args.locks_only,
    )
    report(summary, output)
    if summary.failed and not output.json_mode:
        first = summary.failed[0]
        raise ManifestError(
            f"{len(summary.failed)} of {len(summary.failed) + len(summary.exported)} releases failed to "
            f"export, first {first.base}: {first.message}"
        )
    return 1 if summary.failed else 0


def report(summary: Summary, output: Output) -> None:
    if output.json_mode:
        output.json({
            "exported": list(summary.exported),
            "skipped": list(summary.skipped),
            "failed": [{"release": f.release, "lock": f.base, "arches": list(f.arches), "message": f.message}
                       for f in summary.failed],
        })
        return
    for f in summary.failed:
        output.warn(f"{f.base} ({', '.join(f.arches)}): {f.message}")
    output.result(
        f"exported {len(summary.exported)}, skipped {len(summary.skipped)} (up to date), "
        f"failed {len(summary.failed)}"
    )

"""stackmeta build [RELEASE]: the metapackage's sdist and wheel, offline, byte-reproducible."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stackmeta import builder, metapackage, record
from stackmeta.console import Output
from stackmeta.errors import BuildError, StackmetaError, UsageError
from stackmeta.resolve import load_nearest


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "build", parents=[common],
        help="build the metapackage (sdist and wheel) of a release, or of every release in locks/",
        description=(
            "Build the metapackage of RELEASE (a lock name in --locks-dir) from its record's nearest "
            "consistent set, offline and byte-reproducibly, into --out. Without RELEASE, build every "
            "release in --locks-dir. A release's second stack (a lock named <release>-py2) gets a wheel "
            "only: its sdist would share the default stack's file name."
        ),
    )
    p.add_argument("release", nargs="?", help="lock name, e.g. CMSSW_14_0_0 (default: every record)")
    p.add_argument("--all", action="store_true",
                   help="every record in --locks-dir (the default without RELEASE)")
    p.add_argument("--name", default=metapackage.DEFAULT_NAME,
                   help=f"project name (default: {metapackage.DEFAULT_NAME})")
    p.add_argument("--version", dest="meta_version", metavar="VERSION",
                   help="metapackage version (default: from the release name)")
    p.add_argument("--requires-python", help="Requires-Python (default: ==<major>.<minor>.* of the release)")
    p.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist/)")
    p.add_argument("--build-dir", type=Path, default=Path("build"),
                   help="where the generated projects are written (default: build/)")
    p.set_defaults(func=run)


def build_release(
    locks_dir: Path, name: str, options: metapackage.Options, out: Path, build_dir: Path
) -> builder.Built:
    """Build the metapackage of the record *name* in *locks_dir*."""
    rel = record.load_release(locks_dir, name)
    nearest = load_nearest(locks_dir, name)
    project = metapackage.project(rel, nearest, options)
    return builder.build(project, out, work_dir=build_dir / name, sdist=(name == rel.release))


def run(args: argparse.Namespace, output: Output) -> int:
    options = metapackage.Options(
        name=args.name, version=args.meta_version, requires_python=args.requires_python
    )
    if args.release and args.all:
        raise UsageError(f"give a RELEASE ({args.release}) or --all, not both")
    if args.release:
        names = [args.release]
    else:
        if args.meta_version:
            raise UsageError("--version needs a RELEASE: each release has its own version")
        names = record.list_records(args.locks_dir)
        if not names:
            raise UsageError(
                f"no release records in {args.locks_dir}: run 'stackmeta export' first "
                "(or pass --locks-dir where the locks are)"
            )
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for name in names:
        output.info(f"building {name} ...")
        try:
            built = build_release(args.locks_dir, name, options, args.out, args.build_dir)
        except StackmetaError as exc:
            if len(names) == 1:
                raise
            failures.append(f"{name}: {exc}")
            output.warn(f"{name}: {exc}")
            continue
        files = [{"file": str(path), "sha256": builder.sha256(path)} for path in built.files]
        results.append({"release": name, "project": built.project.name,
                        "version": str(built.project.version), "files": files})
        for item in files:
            output.result(f"{item['file']}  sha256:{item['sha256']}")
    if output.json_mode:
        output.json({"built": results, "failed": failures})
    if failures:
        raise BuildError(f"{len(failures)} of {len(names)} releases failed to build: {failures[0]}")
    return 0


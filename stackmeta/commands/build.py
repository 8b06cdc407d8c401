"""stackmeta build [RELEASE]: the metapackage's sdist and wheel, offline, byte-reproducible."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackmeta import cells as laptop_cells
from stackmeta import record
from stackmeta.cells import home_cell
from stackmeta.commands import common
from stackmeta.console import Output
from stackmeta.errors import BuildError, StackmetaError, UsageError
from stackmeta.package import builder, metapackage
from stackmeta.package.pipeline import build_record, skipped
from stackmeta.resolve.matrix import CellMatrix, load_cells
from stackmeta.resolve.nearest import ResolvedRecord, load_resolved

if TYPE_CHECKING:  # the resolver loads only for a group (the main job does not need it)
    from packaging.requirements import Requirement

    from stackmeta.resolve.group_cells import CellPlan
    from stackmeta.resolve.overlay import Override, Plan


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "build", parents=[common],
        help="build the metapackage (sdist and wheel) of a release, or of every release in locks/",
        description=(
            "Build the metapackage of RELEASE (a lock name in --locks-dir) from its record's nearest "
            "consistent set, offline and byte-reproducibly, into --out. Without RELEASE, build every "
            "release in --locks-dir. A release's second stack (a lock named <release>-py2) gets a wheel "
            "only: its sdist would share the default stack's file name. A metapackage with no "
            f"requirements, or leaving out more than {metapackage.MAX_LEFT_OUT:.0%} of the release's "
            "packages from PyPI (a sign that it was resolved against the wrong index), is refused "
            "unless --force."
        ),
    )
    p.add_argument("release", nargs="?", help="lock name, e.g. CMSSW_14_0_0 (default: every record)")
    p.add_argument("--all", action="store_true",
                   help="every record in --locks-dir (the default without RELEASE)")
    p.add_argument("--force", action="store_true",
                   help="build a metapackage although it has no requirements or leaves out more than "
                        f"{metapackage.MAX_LEFT_OUT:.0%}% of the release's packages from PyPI (the sign "
                        "of a wrong --index-url when it was resolved)")
    add_project_options(p)
    group = p.add_argument_group(
        "a group's baseline",
        "--base RELEASE builds a working group's own metapackage (give --name and --version): the "
        "release's nearest consistent set plus --add requirements and --override pins, checked "
        "for closure against the index like a release; pins of the set that must move are named, "
        "and moved only with --allow-moves. With a 'cells' section in the record, the group is "
        "planned in every cell against that cell's set, and one wheel carries each cell's pins "
        "with markers; a cell without a set for the group is named and refused by the wheel",
    )
    group.add_argument("--base", metavar="RELEASE", help="the release the group's stack builds on")
    group.add_argument("--add", action="append", default=[], metavar="REQ",
                       help="a package the group adds, e.g. coffea==2024.4.0 (repeatable)")
    group.add_argument("--override", action="append", default=[], metavar="NAME==VERSION",
                       help="a pin of the set at another version (repeatable)")
    group.add_argument("--allow-moves", action="store_true",
                       help="move other pins of the set where the additions require it")
    group.add_argument("--index-url", help="the index to check against (default: the set's index)")
    group.add_argument("--cache-dir", type=Path, help="metadata cache (default: the user cache folder)")
    p.set_defaults(func=run)


def add_project_options(p: argparse.ArgumentParser) -> None:
    """The options of the metapackage and where it is built (build and publish share them)."""
    p.add_argument("--name", default=metapackage.DEFAULT_NAME,
                   help=f"project name (default: {metapackage.DEFAULT_NAME})")
    p.add_argument("--version", dest="meta_version", metavar="VERSION",
                   help="metapackage version (default: from the release name)")
    p.add_argument("--requires-python", help="Requires-Python (default: ==<major>.<minor>.* of the release)")
    p.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist/)")
    p.add_argument("--build-dir", type=Path, default=Path("build"),
                   help="where the generated projects are written (default: build/)")


def project_options(args: argparse.Namespace) -> metapackage.Options:
    return metapackage.Options(name=args.name, version=args.meta_version,
                               requires_python=args.requires_python)


def build_group(args: argparse.Namespace, output: Output) -> int:
    """``stackmeta build --base RELEASE --add ... --name N --version V``."""
    from stackmeta.index import IndexClient, IndexSource
    from stackmeta.index.installable import builds_for
    from stackmeta.resolve import baseline, overlay
    from stackmeta.target import Target

    if args.release or args.all:
        raise UsageError("give --base RELEASE or a RELEASE to build, not both")
    if args.name == metapackage.DEFAULT_NAME or not args.meta_version:
        raise UsageError("a group's metapackage needs its own --name and --version, e.g. "
                         "--name hgg-analysis-stack --version 1.0")
    if not args.add and not args.override:
        raise UsageError(f"--base {args.base} with nothing to add: give --add REQ or --override "
                         f"NAME==VERSION (or build the release itself: stackmeta build {args.base})")
    loaded = load_resolved(args.locks_dir, args.base)
    rel, nearest = loaded.release, loaded.nearest
    options = project_options(args)
    metapackage.identity(rel, options)  # bad --name, --version, --requires-python: before the index
    cells = load_cells(args.locks_dir, args.base)
    if not args.force:
        judged = nearest
        if cells is not None:  # over cells: left out means left out in every cell
            pins = {n: v for r in cells.resolved if r.nearest is not None for n, v in r.nearest.pins}
            judged = replace(judged, pins=tuple(sorted(pins.items())))
        metapackage.refuse_thin(rel, judged, args.base)
    additions = [overlay.parse_addition(text) for text in args.add]
    overrides = [overlay.parse_override(text) for text in args.override]
    index_url = args.index_url or nearest.index_url
    asked = ", ".join(args.add + args.override)
    if cells is not None:
        return _build_group_cells(args, output, loaded, cells, index_url, overrides, additions)
    target = Target(python=nearest.python, platform=nearest.platform)
    output.info(f"checking {asked} against {args.base}'s set on {index_url} ...")
    with IndexClient(index_url, cache_dir=args.cache_dir) as client:
        source = IndexSource(client, target, builds=builds_for(client, python2=rel.python.major == 2))
        plan = overlay.plan(replace(nearest, index_url=index_url), source, target,
                            overrides=overrides, additions=additions)
    for far in plan.far:
        output.warn(str(far))
    if plan.moves and not args.allow_moves:
        raise BuildError(f"{plan.moves_message()}: nothing was built; pass --allow-moves to build with "
                         "these moves, or choose other versions")
    group = baseline.group_set(replace(nearest, index_url=index_url), plan)
    project = metapackage.project(rel, group, options)
    built = builder.build(project, args.out, work_dir=args.build_dir / f"{args.name}-{args.meta_version}")
    files = [{"file": str(path), "sha256": builder.sha256(path)} for path in built.files]
    if output.json_mode:
        output.json({"base": args.base, "project": built.project.name, "version": str(built.project.version),
                     "files": files, **plan.to_json()})
        return 0
    for m in plan.moves:
        output.warn(f"moved: {m}")
    for n in plan.new:
        output.info(f"added {n.name}=={n.version} ({'; '.join(n.required_by)})")
    for item in files:
        output.result(f"{item['file']}  sha256:{item['sha256']}")
    return 0


def _build_group_cells(args: argparse.Namespace, output: Output, loaded: ResolvedRecord, cells: CellMatrix,
                       index_url: str, overrides: list[Override], additions: list[Requirement]) -> int:
    """``build --base`` on a record with a cells section: the group planned in every cell, one
    wheel whose requirements carry the cells' markers (as the release's own metapackage)."""
    from stackmeta.index import IndexClient
    from stackmeta.index.installable import builds_for
    from stackmeta.resolve.group_cells import label, plan_cells

    rel = loaded.release
    asked = ", ".join(args.add + args.override)
    output.info(f"checking {asked} against {args.base}'s sets in {len(cells.results)} cells on "
                f"{index_url} ...")
    with IndexClient(index_url, cache_dir=args.cache_dir) as client:
        builds = builds_for(client, python2=rel.python.major == 2)
        group = plan_cells(cells, client, home_cell(rel.python), overrides=overrides, additions=additions,
                           builds=builds, progress=output.progress(), stop_at_moves=not args.allow_moves)
    main = group.main  # raises the home cell's error when no cell has a set
    assert main.plan is not None
    for failed in group.failed:
        output.warn(f"{failed.cell.name}: no set for the group here, the wheel refuses this cell: "
                    f"{failed.failure}")
    planned = len(group.planned)
    for text, where in _per_cell(group.planned, lambda p: [str(f) for f in p.far]):
        output.warn(f"{text} (in {label(where, planned)})")
    if any(r.plan is not None and r.plan.moves for r in group.results) and not args.allow_moves:
        if group.not_planned:
            output.info(f"{len(group.not_planned)} more cells not planned: the first cell that moves pins "
                        "settles it (--allow-moves plans every cell)")
        raise BuildError(f"{group.moves_message()}: nothing was built; pass --allow-moves to build with "
                         "these moves, or choose other versions")
    matrix = group.matrix()
    home = next(r.nearest for r in matrix.results if r.cell == main.cell)
    assert home is not None
    options = project_options(args)
    if options.requires_python is None:  # the cells where the group installs
        options = replace(options, requires_python=str(laptop_cells.requires_python(
            [r.cell for r in matrix.resolved])))
    project = metapackage.project(rel, home, options, matrix)
    built = builder.build(project, args.out, work_dir=args.build_dir / f"{args.name}-{args.meta_version}")
    files = [{"file": str(path), "sha256": builder.sha256(path)} for path in built.files]
    if output.json_mode:
        output.json({"base": args.base, "project": built.project.name, "version": str(built.project.version),
                     "files": files, **main.plan.to_json(), "cell": main.cell.name,
                     "cells": [r.to_json() for r in group.results]})
        return 0
    for text, where in _per_cell(group.planned, lambda p: [str(m) for m in p.moves]):
        output.warn(f"moved: {text} (in {label(where, planned)})")
    for text, where in _per_cell(group.planned, lambda p: [
            f"{n.name}=={n.version} ({'; '.join(n.required_by)})" for n in p.new]):
        output.info(f"added {text} (in {label(where, planned)})")
    output.info(f"{planned} of {len(group.results)} cells have the group's set")
    for item in files:
        output.result(f"{item['file']}  sha256:{item['sha256']}")
    return 0


def _per_cell(planned: Iterable[CellPlan], lines: Callable[[Plan], list[str]]) -> list[tuple[str, list[str]]]:
    """Each line of *lines* over the cells' plans, with the cells it holds in (a cell's own
    Python and platform in it read as 'this cell')."""
    out: dict[str, list[str]] = {}
    for r in planned:
        assert r.plan is not None
        for line in lines(r.plan):
            out.setdefault(line.replace(str(r.plan.target), "this cell"), []).append(r.cell.name)
    return list(out.items())


def run(args: argparse.Namespace, output: Output) -> int:
    if args.index_url:
        args.index_url = common.index_url(args.index_url)
    if args.base:
        return build_group(args, output)
    if args.add or args.override or args.allow_moves:
        raise UsageError("--add, --override and --allow-moves build a group's stack: give --base RELEASE")
    options = project_options(args)
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
    passed: list[dict[str, str]] = []
    for name in names:
        try:
            why = None if args.release else skipped(args.locks_dir, name)
        except StackmetaError:
            why = None  # the build below says what is wrong with the record
        if why is not None:
            passed.append({"release": name, "reason": why})
            output.info(f"{name}: not built: {why}")
            continue
        output.info(f"building {name} ...")
        try:
            built = build_record(args.locks_dir, name, options, args.out, args.build_dir, force=args.force)
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
        output.json({"built": results, "skipped": passed, "failed": failures})
    if failures:
        raise BuildError(f"{len(failures)} of {len(names)} releases failed to build: {failures[0]}")
    return 0


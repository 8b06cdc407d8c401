"""stackmeta resolve RELEASE: the nearest pip-consistent set, saved in the record and locks/."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from stackmeta import record
from stackmeta.cells import Cell, cells_for
from stackmeta.check.report import require_known
from stackmeta.commands import common
from stackmeta.console import Output
from stackmeta.errors import IndexAccessError, RecordError, ResolutionError, UsageError
from stackmeta.index import PYPI, IndexClient, IndexSource
from stackmeta.index.installable import Builds, builds_for
from stackmeta.record import BuildKind
from stackmeta.resolve.cells import resolve_cells
from stackmeta.resolve.matrix import CellMatrix, cells_of, save_cells
from stackmeta.resolve.nearest import RULE, NearestSet, nearest_of, save_nearest
from stackmeta.resolve.search import resolve
from stackmeta.resolve.warmup import PROCESSES
from stackmeta.target import PLATFORMS, Target, platform_for_arch

CELLS_JOBS = 32  # requests in flight at once when resolving every cell (16 elsewhere)


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "resolve", parents=[common],
        help="find the nearest pip-consistent set of a release's pins (for its metapackage)",
        description=(
            "Find, with resolvelib, the nearest set of pins pip accepts: the release's exact versions "
            "wherever possible; when two pins conflict, " + RULE + ". Dependencies the release does "
            "not ship are pinned too; packages pip cannot install are left out. Saved as the record's "
            "'consistent' section and as locks/<RELEASE>.nearest.txt."
        ),
    )
    p.add_argument("release", help="lock name, e.g. CMSSW_14_0_0")
    p.add_argument("--index-url", default=PYPI, help=f"simple index (default: {PYPI})")
    p.add_argument("--python", help="target Python (default: the release's)")
    p.add_argument("--platform", choices=sorted(PLATFORMS),
                   help="target platform (default: from the release's first arch)")
    p.add_argument("--cache-dir", type=Path, help="metadata cache (default: the user cache folder)")
    cells = p.add_argument_group(
        "cells",
        "Without --python and --platform, every laptop cell is resolved: each CPython minor from "
        "the release's own up to --newest-python, times linux-x86_64, linux-aarch64, macos-x86_64, "
        "macos-arm64, windows-amd64 (2.7 for a Python 2 release). Saved as the record's 'cells' "
        "section; locks/<RELEASE>.nearest.txt gets one line per pin with the marker of its cells.")
    cells.add_argument("--newest-python", default="3.13", metavar="X.Y",
                       help="the newest Python of the cells (default: 3.13; 3.14 where the index has "
                            "its wheels)")
    cells.add_argument("--processes", type=_processes, default=PROCESSES, metavar="N",
                       help="from a warm cache, search cells in N more processes beside this one "
                            f"(default here: {PROCESSES}, the cores but one, at most 3; 0: one "
                            "process; each holds its own copy of the metadata)")
    building = p.add_argument_group(
        "installable",
        "In a cell, or the one target of --python/--platform, a version is installable when it has "
        "a wheel for it, or an sdist that builds (PEP 517, isolated, build requirements from the "
        "index only, no compiler, --build-timeout per build, two at a time, cached by the sdist's "
        "sha256) into a pure-Python wheel.")
    building.add_argument("--no-build", action="store_true",
                          help="do not build sdists: an sdist counts as installable (faster, less true)")
    building.add_argument("--build-timeout", type=float, default=300.0, metavar="SECONDS",
                          help="time limit of one sdist build (default: 300)")
    p.set_defaults(func=run)


def _processes(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 16:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of processes from 0 to 16")
    return n


def require_pages(source: IndexSource, nothing_done: str) -> None:
    """IndexAccessError unless every project page prefetched into *source* was read (an unread
    page would look like a project without versions to the resolver)."""
    page_errors = {n: e for n, e in source.errors.items() if "==" not in n}  # "name==version": metadata
    if page_errors:
        name, error = min(page_errors.items())
        raise IndexAccessError(f"{len(page_errors)} project page(s) could not be read, first {name}: "
                               f"{error}: {nothing_done}; run again")


def _builds(args: argparse.Namespace, rel: record.Release, client: IndexClient) -> Builds | None:
    """The sdist builds that judge installability (None with --no-build): a Python 2 release's
    with Python 2.7."""
    if args.no_build:
        return None
    builds = builds_for(client, python2=rel.python.major == 2, timeout=args.build_timeout)
    if builds is None:
        raise UsageError("a Python 2 release's sdists are built with Python 2.7, and none was "
                         "found (python2.7 on PATH, or pyenv's): install one, or pass --no-build")
    return builds


def run_cells(args: argparse.Namespace, output: Output, doc: Mapping[str, Any], rel: record.Release) -> int:
    """``stackmeta resolve RELEASE``: every cell."""
    newest = args.newest_python.split(".")
    if len(newest) != 2 or not all(p.isdigit() for p in newest):
        raise UsageError(f"--newest-python {args.newest_python!r}: use <major>.<minor>, e.g. 3.13")
    cells = cells_for(rel.python, newest=(int(newest[0]), int(newest[1])))
    progress = output.progress()
    # from a cold cache the cells are searched several at once first (stackmeta.resolve.warmup),
    # each asking for batches of metadata: more requests in flight than one search needs
    with IndexClient(args.index_url, cache_dir=args.cache_dir, jobs=CELLS_JOBS) as client:
        from_pypi = sorted(p.name for p in rel.packages if p.build is BuildKind.PYPI)
        client.projects(from_pypi, progress)
        require_known([n for n in from_pypi if client.project(n) is None], len(from_pypi), client.index_url,
                      "nothing was written")
        try:
            matrix = resolve_cells(rel, client, cells, builds=_builds(args, rel, client), progress=progress,
                                   before=_cells_before(args, output, doc), processes=args.processes)
        except ResolutionError as exc:
            raise IndexAccessError(str(exc)) from None
    if not matrix.resolved:
        raise ResolutionError(f"{args.release}: no cell has a consistent set: {matrix.results[0].failure}")
    path = save_cells(args.locks_dir, args.release, rel, matrix)
    if output.json_mode:
        output.json(matrix.to_json())
        return 0
    output.result(f"{args.release}: {len(matrix.resolved)} of {len(cells)} cells resolved -> {path}")
    for r in matrix.results:
        c = matrix.counts(r.cell)
        if r.nearest is None:
            output.warn(f"  {r.cell.name}: no consistent set: {r.failure}")
            continue
        same = f" (same answers as {r.same_as})" if r.same_as else ""
        output.result(f"  {r.cell.name}: {c['exact']} exact, {c['moved']} moved, {c['left_out']} left out, "
                      f"{c['added']} added{same}")
    return 0


def _cells_before(args: argparse.Namespace, output: Output, doc: Mapping[str, Any]) -> CellMatrix | None:
    """The record's cells as resolved before (tried last by each cell's search); a malformed
    section is said and left aside (this run writes it anew), never the run's end."""
    try:
        return cells_of(doc, record.record_path(args.locks_dir, args.release), args.release)
    except RecordError as exc:
        output.warn(f"{str(exc).partition(': run')[0]}: resolved without the sets it held")
        return None


def _had(args: argparse.Namespace, output: Output, doc: Mapping[str, Any],
         target: Target) -> NearestSet | None:
    """The set the record has for *target*: its cell's, or its "consistent" section's when
    that was resolved for the same Python minor and platform (tried last by the search)."""
    cells = _cells_before(args, output, doc)
    if cells is not None:
        try:
            return cells.set_of(Cell(python=target.python_minor, platform=target.platform))
        except UsageError:  # a platform no cell has
            return None
    try:
        had = nearest_of(doc, record.record_path(args.locks_dir, args.release), args.release)
    except RecordError:
        return None
    same = Target(python=had.python, platform=had.platform).python_minor == target.python_minor
    return had if same and had.platform == target.platform else None


def run(args: argparse.Namespace, output: Output) -> int:
    if args.index_url:
        args.index_url = common.index_url(args.index_url)
    doc, rel = record.load(args.locks_dir, args.release)  # read once: the sets before are in it
    if args.python is None and args.platform is None:
        return run_cells(args, output, doc, rel)
    try:
        python = Version(args.python) if args.python else rel.python
    except InvalidVersion:
        raise UsageError(f"--python {args.python!r} is not a version: use e.g. 3.9") from None
    platform = args.platform or (platform_for_arch(rel.arches[0]) if rel.arches else "linux-x86_64")
    target = Target(python=python, platform=platform)
    progress = output.progress()
    with IndexClient(args.index_url, cache_dir=args.cache_dir) as client:
        source = IndexSource(client, target, builds=_builds(args, rel, client))
        names = sorted(p.name for p in rel.packages)
        source.prefetch(names, progress)
        source.prefetch_dependencies(record.pins(rel), progress)
        require_pages(source, "nothing was written")
        from_pypi = sorted(p.name for p in rel.packages if p.build is BuildKind.PYPI)
        require_known([n for n in from_pypi if client.project(n) is None], len(from_pypi), client.index_url,
                      "nothing was written")
        source.build_sdists(record.pins(rel), progress)  # the release's sdist-only versions
        nearest = resolve(rel, source, target, index_url=client.index_url, progress=progress,
                          before=_had(args, output, doc, target))
        for key, err in sorted(source.errors.items()):
            output.warn(f"{key}: dependencies unknown ({err})")
    path = save_nearest(args.locks_dir, args.release, rel, nearest)
    if output.json_mode:
        output.json(nearest.to_json())
        return 0
    output.result(
        f"{args.release}: {len(nearest.pins)} pins for {target}: {len(nearest.deviations)} deviations, "
        f"{len(nearest.additions)} additions, {len(nearest.omissions)} omissions -> {path}"
    )
    for dev in nearest.deviations:
        output.result(f"  {dev.shown}: {dev.reason}")
    for om in nearest.omissions:
        output.result(f"  left out {om.name} {om.release_version}: {om.reason}")
    return 0

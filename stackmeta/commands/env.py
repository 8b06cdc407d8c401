"""stackmeta env RELEASE DIR: a virtualenv with the release's nearest set, overrides and additions."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from stackmeta import record
from stackmeta.cells import Cell, running_cell
from stackmeta.commands import common
from stackmeta.commands.resolve import require_pages
from stackmeta.console import Output
from stackmeta.errors import ResolutionError
from stackmeta.index import IndexClient, IndexSource
from stackmeta.index.installable import Builds
from stackmeta.resolve import overlay, venv
from stackmeta.resolve.group_cells import CellSource
from stackmeta.resolve.matrix import cells_of
from stackmeta.resolve.nearest import NearestSet, load_resolved
from stackmeta.target import Target


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "env", parents=[common],
        help="make a virtualenv with a release's nearest consistent set, plus your overrides and additions",
        description=(
            "Create a virtualenv at DIR holding the release's nearest consistent set (run 'stackmeta "
            "resolve' first) with the given overrides and additions. Before anything is installed, the "
            "overrides and additions are checked against the rest of the set by their metadata; when "
            "other pins would have to move, the command names them and stops, unless --allow-moves. "
            "The lock and the record are never changed; DIR/stackmeta-env.json records what the "
            "environment was made from, so 'stackmeta diff RELEASE --env' inside it shows the overrides. "
            "What the environment's cell (its Python and this machine's platform) cannot install is "
            "left out up front, each package with its reason, in the plan and its JSON ('left_out'): "
            "when the record has a 'cells' section holding that cell, its set is used as it is (its "
            "omissions are what is left out; what the overrides and additions bring is judged by "
            "building, as below); otherwise each pin is judged on the index as 'stackmeta "
            "resolve' judges cells: a wheel for the cell, or an sdist that builds (PEP 517, isolated, no "
            "compiler, cached) into a pure-Python wheel. A pin none of whose versions the cell can "
            "install is left out, with every pin that requires it; a pin another version of which it can "
            "install moves there (a move, as above). Everything is installed by one 'pip install "
            "--no-deps --use-pep517' of the exact pins, so the order never matters; a failure names the "
            "package that failed."
        ),
    )
    p.add_argument("release", help="lock name, e.g. CMSSW_9_3_0")
    p.add_argument("dir", type=Path, help="the environment's folder (new, or empty)")
    p.add_argument("--override", action="append", default=[], metavar="NAME==VERSION",
                   help="pin a package of the set at another version (repeatable)")
    p.add_argument("--add", action="append", default=[], metavar="REQ",
                   help="add a package the set does not hold, e.g. coffea or 'coffea>=0.7' (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME",
                   help="leave a package of the set out, e.g. one that needs system software to build "
                        "(repeatable)")
    p.add_argument("--allow-moves", action="store_true",
                   help="create the environment even when other pins must move to fit")
    p.add_argument("--python", metavar="PATH",
                   help="the interpreter (default: python<X.Y> of the release on PATH or in ~/.pyenv)")
    p.add_argument("--index-url", help="simple index (default: the one the nearest set was resolved on)")
    p.add_argument("--cache-dir", type=Path, help="metadata cache (default: the user cache folder)")
    p.add_argument("--no-build", action="store_true",
                   help="do not build sdists to judge them (the set's pins without a 'cells' section; "
                        "what the overrides and additions bring): an sdist counts as installable and pip "
                        "finds out (a failure names the package)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; create nothing")
    p.set_defaults(func=run)


def _record_source(locks_dir: Path, name: str, rel: record.Release) -> dict[str, str]:
    path = record.record_path(locks_dir, name)
    return {"path": str(path.absolute()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "release_source": rel.source}


def run(args: argparse.Namespace, output: Output) -> int:
    if args.index_url:
        args.index_url = common.index_url(args.index_url)
    overrides = [overlay.parse_override(text) for text in args.override]
    additions = [overlay.parse_addition(text) for text in args.add]
    dest: Path = args.dir.absolute()
    venv.check_destination(dest)
    loaded = load_resolved(args.locks_dir, args.release)
    rel, nearest = loaded.release, loaded.nearest
    python = venv.find_python(args.release, rel.python, args.python)
    if python.minor != (rel.python.major, rel.python.minor):
        output.warn(f"{args.release} is a Python {rel.python} stack; --python {python.path} is Python "
                    f"{python.version}: the set is checked again for it, and may not fit")
    else:
        output.info(f"{args.release} is a Python {rel.python} stack: using {python.path} "
                    f"(Python {python.version}; --python PATH for another)")
    here = running_cell()
    cell = Cell(python=python.minor, platform=here.platform if here is not None else nearest.platform)
    from_cells = _cell_set(loaded.doc, cell, args.release)
    if from_cells is not None:
        nearest = from_cells
        judged_by = f"the record's cells section ({cell.name})"
    else:
        judged_by = "none (--no-build)" if args.no_build else f"sdist builds for {cell.name}"
    target = Target(python=python.version, platform=cell.platform)
    progress = output.progress()
    index_url = args.index_url or nearest.index_url
    with IndexClient(index_url, cache_dir=args.cache_dir) as client:
        builds = None
        if not args.no_build:  # with the cell's set: for what the plan brings besides it
            builds = Builds(client, python=str(python.path) if python.version.major == 2 else sys.executable,
                            python2=python.version.major == 2)
        source = IndexSource(client, target, builds=builds)
        names = sorted({n for n, _ in nearest.pins} | {o.name for o in overrides}
                       | {a.name for a in additions})
        source.prefetch(names, progress)
        source.prefetch_dependencies([*nearest.pins, *((o.name, o.version) for o in overrides)], progress)
        require_pages(source, "nothing was created")
        if from_cells is None:
            source.build_sdists(nearest.pins, progress)
        nearest_here = replace(nearest, index_url=index_url)
        # the cell's own set was judged when the release was resolved; the rest is judged here
        planned_on = CellSource(source, nearest.pins) if from_cells is not None else source
        plan = overlay.plan(nearest_here, planned_on, target, overrides=overrides, additions=additions,
                            exclude=args.exclude)
    _warn_unknown(plan, output)
    for far in plan.far:
        output.warn(str(far))
    refused = bool(plan.moves) and not args.allow_moves
    result: dict[str, Any] = {"plan": plan.to_json(), "dir": str(dest), "created": False,
                              "dry_run": args.dry_run, "cell": cell.name, "installable_by": judged_by}
    if not output.json_mode:
        _show(plan, nearest, output, judged_by)
    if refused:
        message = (f"{plan.moves_message()}: nothing was created; pass --allow-moves to make the "
                   "environment with these moves, or choose other versions")
        if output.json_mode:
            output.json({**result, "error": message})
            return 1
        raise ResolutionError(message)
    if args.dry_run:
        if output.json_mode:
            output.json(result)
        else:
            output.result(f"dry run: would create {dest} with {len(plan.pins)} packages for {python.path}")
        return 0
    env_record = overlay.env_record(plan, nearest, record=_record_source(args.locks_dir, args.release, rel),
                                    interpreter=str(python.path), allow_moves=args.allow_moves)
    try:
        venv.make(dest, python, pins=dict(plan.pins), pins_file_text=overlay.pins_text(plan),
                  index_url=index_url, record=env_record, env=os.environ, progress=progress)
    except venv.VenvError as exc:
        raise venv.VenvError(f"{exc}{_build_hint(str(exc), plan, rel)}; nothing was created") from None
    problems = venv.pip_check(dest, os.environ, planned={n for n, _ in plan.pins})
    for line in problems:
        output.warn(f"pip check in {dest}: {line}")
    if output.json_mode:
        output.json({**result, "created": True, "pip_check": problems})
    else:
        output.result(f"created {dest}: {len(plan.pins)} packages for Python {python.version}; "
                      f"'source {dest}/bin/activate', then 'stackmeta diff {args.release} --env' shows "
                      "the overrides")
    return 0


def _show(plan: overlay.Plan, nearest: NearestSet, output: Output, judged_by: str) -> None:
    pins = nearest.pin_map
    output.result(f"{plan.release}: {len(plan.pins)} packages for {plan.target} from {plan.index_url}")
    if plan.left_out:
        output.result(f"  {len(plan.left_out)} left out: this cell cannot install them (judged by "
                      f"{judged_by})")
    for lo in plan.left_out:
        output.result(f"  left out  {lo}")
    for o in plan.overrides:
        output.result(f"  override  {o.name} {pins[o.name]} -> {o.version}")
    for n in plan.new:
        output.result(f"  add       {n.name} {n.version} (for {'; '.join(n.required_by)})")
    for name in plan.excluded:
        output.result(f"  exclude   {name} {pins[name]}")
    for m in plan.moves:
        output.result(f"  move      {m}")
    if not (plan.overrides or plan.additions or plan.excluded):
        output.result("  no overrides, additions or exclusions: the set as it is")
    elif plan.fits:
        output.result(f"  {plan.requested} fits the rest of the set: no other pin moves")


def _cell_set(doc: Mapping[str, Any], cell: Cell, release: str) -> NearestSet | None:
    """The nearest set of *cell* in the record's "cells" section (None when the record has no
    such section, or no set for that cell)."""
    matrix = cells_of(doc, release, release)
    if matrix is None:
        return None
    if cell not in matrix.cells:
        return None  # a cell the record was not resolved for
    return matrix.result(cell).nearest


def _warn_unknown(plan: overlay.Plan, output: Output) -> None:
    """Pins whose dependencies no metadata tells (sdists before Metadata 2.2) are not checked:
    the user's own requests by name, the rest counted."""
    asked = {o.name for o in plan.overrides} | {n.name for n in plan.new}
    mine = [item for item in plan.unknown if item.split(" ")[0] in asked]
    for item in mine:
        output.warn(f"{item}: its dependencies are unknown (no wheel, and its sdist's metadata does not "
                    "list them): not checked before installing; 'pip check' runs afterwards")
    others = len(plan.unknown) - len(mine)
    if others:
        output.warn(f"{others} other pins of the set have unknown dependencies (sdists without reliable "
                    "metadata): taken as having none, as 'stackmeta resolve' does")


def _build_hint(message: str, plan: overlay.Plan, rel: record.Release) -> str:
    """For a pin pip could not build: what the release builds it with, and --exclude."""
    for name, version in plan.pins:
        if f"{name}=={version}:" in message:
            try:
                libs = rel.package(name).system_libs
            except KeyError:
                libs = ()
            needs = f" (CMS builds it with {', '.join(libs)})" if libs else ""
            return f"; install what {name} needs to build{needs}, or leave it out with --exclude {name}"
    return ""

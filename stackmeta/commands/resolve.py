"""stackmeta resolve RELEASE: the nearest pip-consistent set, saved in the record and locks/."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from stackmeta import record
from stackmeta.check.report import require_known
from stackmeta.commands import common
from stackmeta.console import Output
from stackmeta.errors import IndexAccessError, UsageError
from stackmeta.index import PYPI, IndexClient, IndexSource
from stackmeta.record import BuildKind
from stackmeta.resolve.nearest import RULE, save_nearest
from stackmeta.resolve.search import resolve
from stackmeta.target import PLATFORMS, Target, platform_for_arch


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
    p.set_defaults(func=run)


def require_pages(source: IndexSource, nothing_done: str) -> None:
    """IndexAccessError unless every project page prefetched into *source* was read (an unread
    page would look like a project without versions to the resolver)."""
    page_errors = {n: e for n, e in source.errors.items() if "==" not in n}  # "name==version": metadata
    if page_errors:
        name, error = min(page_errors.items())
        raise IndexAccessError(f"{len(page_errors)} project page(s) could not be read, first {name}: "
                               f"{error}: {nothing_done}; run again")


def run(args: argparse.Namespace, output: Output) -> int:
    if args.index_url:
        args.index_url = common.index_url(args.index_url)
    rel = record.load_release(args.locks_dir, args.release)
    try:
        python = Version(args.python) if args.python else rel.python
    except InvalidVersion:
        raise UsageError(f"--python {args.python!r} is not a version: use e.g. 3.9") from None
    platform = args.platform or (platform_for_arch(rel.arches[0]) if rel.arches else "linux-x86_64")
    target = Target(python=python, platform=platform)
    progress = output.progress()
    with IndexClient(args.index_url, cache_dir=args.cache_dir) as client:
        source = IndexSource(client, target)
        names = sorted(p.name for p in rel.packages)
        source.prefetch(names, progress)
        source.prefetch_dependencies(record.pins(rel), progress)
        require_pages(source, "nothing was written")
        from_pypi = sorted(p.name for p in rel.packages if p.build is BuildKind.PYPI)
        require_known([n for n in from_pypi if client.project(n) is None], len(from_pypi), client.index_url,
                      "nothing was written")
        nearest = resolve(rel, source, target, index_url=client.index_url, progress=progress)
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

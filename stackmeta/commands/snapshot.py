"""stackmeta snapshot: a static index with exactly what a check of a release reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from stackmeta.check import closure, platforms, snapshot
from stackmeta.commands import common
from stackmeta.commands.check import _load
from stackmeta.console import Output
from stackmeta.errors import UsageError
from stackmeta.index.client import PYPI, IndexClient
from stackmeta.target import LAPTOP_PLATFORMS, PLATFORMS, Target


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "snapshot", parents=[common], help="write a static index of what a check of a release reads",
        description="Run the check's reads for a release and write them as a static PEP 503 + PEP 691 "
                    "index (project pages and PEP 658 metadata files) into --out, usable offline as "
                    "--index-url file://OUT/simple or served over HTTP (e.g. python -m http.server).",
    )
    p.add_argument("release", help="a lock name: CMSSW_14_0_0, CMSSW_10_6_0-py2")
    p.add_argument("--out", type=Path, required=True, help="the folder to write (replaced if a snapshot)")
    p.add_argument("--index-url", default=PYPI,
                   help=f"the index to read: https://..., or file://DIR or DIR of a snapshot "
                        f"(default: {PYPI})")
    p.add_argument("--python", help="the target Python (default: the release's)")
    p.add_argument("--platform", choices=sorted(PLATFORMS), help="the target platform")
    p.add_argument("--cache-dir", type=Path, help="the on-disk cache (default: the user cache dir)")
    p.add_argument("--no-cache", action="store_true", help="use no on-disk cache")
    p.add_argument("--jobs", type=int, default=16, help="requests in flight at once (default: 16)")
    p.add_argument("--laptop", action="store_true",
                   help="also record what 'check --platform all' reads (with --python: the nearest versions "
                        "with a wheel too) and keep every version's pick for each laptop platform")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, output: Output) -> int:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    args.index_url = common.index_url(args.index_url)
    rel, _ = _load(args)
    target = closure.default_target(rel, args.python, args.platform)
    snapshot.check_destination(args.out)  # before any request
    with IndexClient(args.index_url, False if args.no_cache else args.cache_dir, jobs=args.jobs,
                     keep_raw=True) as client:
        pages, metas = closure.fetch(rel, target, client, output.progress())
        also: list[Target] = []
        if args.laptop:
            pins = closure.shipped_pins(rel, target)
            m = platforms.matrix(rel.lock_name, pins, target.python, pages, nearest=args.python is not None)
            if args.python is not None:
                platforms.check_moves(rel, pins, m, client, pages, metas, output.progress())
            also = [platforms.laptop_target(target.python, p) for p in LAPTOP_PLATFORMS]
    about = {"release": rel.release, "lock_name": rel.lock_name, "python": target.python_full,
             "platform": target.platform, "index_url": client.index_url,
             **({"laptop": list(LAPTOP_PLATFORMS)} if args.laptop else {})}
    summary = snapshot.write_snapshot(args.out, pages=pages, metas=metas, target=target, about=about,
                                      also=also)
    failed = sorted(str(n) for n, p in pages.items() if isinstance(p, Exception))
    failed += sorted(f"{n}=={v}" for (n, v), m in metas.items() if isinstance(m, Exception))
    data = {"out": str(summary.out), "projects": summary.projects, "files": summary.files,
            "metadata_files": summary.metadata_files, "dropped_files": summary.dropped_files,
            "bytes": summary.bytes, "failed": failed}
    if output.json_mode:
        output.json(data)
    else:
        output.result(f"{summary.out}: {summary.projects} project pages, {summary.files} files "
                      f"({summary.dropped_files} dropped as unusable for {target}"
                      f"{' and the laptop platforms' if args.laptop else ''}), "
                      f"{summary.metadata_files} metadata files, {summary.bytes / 1e6:.1f} MB")
        for f in failed:
            output.warn(f"not in the snapshot (the index failed): {f}")
    return 3 if failed else 0

"""stackmeta show: a summary of a committed release record."""

from __future__ import annotations

import argparse
import difflib
from typing import Any

from stackmeta import record
from stackmeta.console import Output
from stackmeta.errors import RecordError
from stackmeta.locks.constraints import python_text
from stackmeta.record import BuildKind, Release


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("show", parents=[common], help="summarise a release's record",
                              description="Summarise locks/<RELEASE>.json: Python, packages, sources, "
                                          "patches, system libraries, arches, unshipped pins, problems.")
    p.add_argument("release", help="a lock name: CMSSW_14_0_0, CMSSW_10_6_0-py2")
    p.set_defaults(func=run)


def summary(rel: Release, name: str) -> dict[str, Any]:
    counts = {kind.value: sum(1 for p in rel.packages if p.build is kind) for kind in BuildKind}
    return {
        "lock": name,
        "release": rel.release,
        "metapackage_version": None if rel.metapackage_version is None else str(rel.metapackage_version),
        "python": str(rel.python),
        "pythons": {a: str(v) for a, v in rel.pythons.items()},
        "arches": list(rel.arches),
        "source": rel.source,
        "packages": len(rel.packages),
        "rpms": sum(len(p.rpm.split("+")) for p in rel.packages if p.rpm),
        "pinned": sum(1 for p in rel.packages if p.version is not None),
        "from_pypi": counts["pypi"],
        "from_git_or_url": counts["vcs"] + counts["url"],
        "other": counts["other"],
        "patched": sorted(p.name for p in rel.packages if p.patched),
        "system_libs": list(rel.system_libs),
        "arch_only": {p.name: list(p.arches) for p in rel.packages
                      if p.arches and set(p.arches) != set(rel.arches)},
        "unshipped": [f"{u.name}=={u.version_written}" for u in rel.unshipped],
        "problems": [{"kind": p.kind, "message": p.message, "where": p.where} for p in rel.problems],
    }


def run(args: argparse.Namespace, output: Output) -> int:
    name = args.release
    path = record.record_path(args.locks_dir, name)
    if not path.exists() and args.locks_dir.is_dir():
        have = record.list_records(args.locks_dir)
        near = difflib.get_close_matches(name, have, n=5, cutoff=0.5)
        raise RecordError(
            f"no record {path}: run 'stackmeta export {name} --cmsdist PATH' first"
            + (f"; nearest: {', '.join(near)}" if near else f" ({len(have)} records in {args.locks_dir})")
        )
    rel = record.load_release(args.locks_dir, name)
    data = summary(rel, name)
    if output.json_mode:
        output.json(data)
        return 0
    lines = [
        f"{rel.release} (metapackage {rel.metapackage_version}), lock {name}",
        f"  Python:        {python_text(rel)}",
        f"  arches:        {', '.join(rel.arches) or 'not given'}",
        f"  source:        {rel.source}",
        f"  packages:      {data['packages']} ({data['rpms']} rpms), {data['pinned']} pinned",
        f"  from PyPI:     {data['from_pypi']}",
        f"  from git/URL:  {data['from_git_or_url']}",
        f"  other recipes: {data['other']}",
        f"  patched by CMS ({len(data['patched'])}): {', '.join(data['patched']) or '-'}",
        f"  system libraries ({len(data['system_libs'])}): {', '.join(data['system_libs']) or '-'}",
    ]
    if data["arch_only"]:
        lines.append("  only on some arches: " + ", ".join(
            f"{n} ({', '.join(a)})" for n, a in sorted(data["arch_only"].items())))
    lines.append(f"  unshipped pins ({len(data['unshipped'])}): {', '.join(data['unshipped']) or '-'}")
    lines.append(f"  problems ({len(rel.problems)}):")
    for p in rel.problems:
        lines.append(f"    {p.kind}: {p.where + ': ' if p.where else ''}{p.message}")
    output.result("\n".join(lines))
    return 0

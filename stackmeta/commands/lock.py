"""stackmeta lock: write a record's lock forms (constraints, hashed requirements, PEP 751)."""

from __future__ import annotations

import argparse
from pathlib import Path

from packaging.utils import NormalizedName
from packaging.version import Version

from stackmeta import __version__, atomic, lock, lockforms, pylock, record, resolve
from stackmeta.check import SECTION as CHECK_SECTION
from stackmeta.check import CheckReport, FileInfo
from stackmeta.console import Output
from stackmeta.errors import RecordError, StackmetaError
from stackmeta.target import Target

FORMATS = ("constraints", "requirements", "pylock", "all")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "lock", parents=[common], help="write a release's locks: constraints, hashed requirements, pylock",
        description=(
            "Write the lock forms of a release record into --locks-dir, all from the same record: "
            "<name>.txt (pip constraints), <name>.hashes.txt (pip --require-hashes, with --hashes), "
            "pylock.<name>.toml (PEP 751, the release's own versions) and "
            "pylock.<name>-nearest.toml (PEP 751, the nearest pip-consistent set)."
        ),
    )
    p.add_argument("release", help="the lock name, e.g. CMSSW_14_0_0 or CMSSW_10_6_0-py2")
    p.add_argument("--format", choices=FORMATS, default="all")
    p.add_argument("--hashes", action="store_true",
                   help="with --format requirements: add the sha256 of every file (default for 'all')")
    p.add_argument("--index-url", help="look up files the check did not read (versions the nearest set "
                   "moved) on this index (default: the index the check used)")
    p.add_argument("--offline", action="store_true", help="use only what the record holds")
    p.add_argument("--cache-dir", type=Path)
    p.set_defaults(func=run)


def _report(doc: dict[str, object], path: Path) -> CheckReport:
    data = doc.get(CHECK_SECTION)
    if not isinstance(data, dict):
        raise RecordError(f"{path} has no check results (files and hashes): run 'stackmeta check' first")
    return CheckReport.from_json(data)


def _index_lookup(index_url: str, cache_dir: Path | None, target: Target) -> lockforms.FileLookup:
    from stackmeta.index import IndexClient, file_usable

    client = IndexClient(index_url, cache_dir)

    def lookup(name: NormalizedName, version: Version) -> list[FileInfo] | None:
        try:
            page = client.project(name)
        except StackmetaError:
            return None
        if page is None:
            return None
        return [
            FileInfo(filename=f.filename, url=f.url, sha256=f.sha256, size=f.size, kind=f.kind,
                     usable=file_usable(f, target), yanked=f.yanked,
                     requires_python=None if f.requires_python is None else str(f.requires_python))
            for f in page.files_of(version)
        ]

    return lookup


def run(args: argparse.Namespace, output: Output) -> int:
    locks_dir: Path = args.locks_dir
    name: str = args.release
    path = record.record_path(locks_dir, name)
    doc = record.read_document(path)
    release = record.load_release(locks_dir, name)
    fmt = args.format
    written: list[Path] = []
    left_out: dict[str, list[str]] = {}

    if fmt in ("constraints", "all"):
        target_path = record.constraints_path(locks_dir, name)
        atomic.write_text(target_path, lock.constraints_text(release, lock_name=name))
        written.append(target_path)
    if fmt == "requirements" and not args.hashes:
        target_path = locks_dir / f"{name}.requirements.txt"
        atomic.write_text(target_path, "\n".join(lock.pin_lines(release)) + "\n")
        written.append(target_path)

    need_files = fmt in ("pylock", "all") or (fmt == "requirements" and args.hashes)
    if need_files:
        report = _report(doc, path)
        target = Target(python=Version(report.python), platform=report.platform)
        lookup = lockforms.report_lookup(report)
        if not args.offline:
            lookup = lockforms.chain(
                lookup, _index_lookup(args.index_url or report.index_url, args.cache_dir, target))
        faithful = lockforms.faithful_entries(release)
        if fmt in ("requirements", "all"):
            file_name = f"{name}.hashes.txt"
            text = lockforms.hashes_text(
                release, f"{release.release}: the release's exact files, for pip --require-hashes",
                faithful, lockforms.report_lookup(report), file_name=file_name)
            atomic.write_text(locks_dir / file_name, text)
            written.append(locks_dir / file_name)
        if fmt in ("pylock", "all"):
            text, missing = lockforms.pylock_text(
                release, target, faithful, lockforms.report_lookup(report),
                index_url=report.index_url, created_by=f"stackmeta {__version__}")
            out = locks_dir / pylock.file_name(name)
            atomic.write_text(out, text)
            written.append(out)
            left_out[out.name] = [f"{m.entry.name}=={m.entry.version}" for m in missing]
            if resolve.SECTION in doc:
                nearest = resolve.load_nearest(locks_dir, name)
                text, missing = lockforms.pylock_text(
                    release, target, lockforms.nearest_entries(nearest.pins), lookup,
                    index_url=nearest.index_url, created_by=f"stackmeta {__version__}")
                if missing:
                    pins = ", ".join(f"{m.entry.name}=={m.entry.version}" for m in missing)
                    raise RecordError(
                        f"{name}: no files known for {pins} of the nearest set: "
                        "run without --offline, or 'stackmeta check' again"
                    )
                out = locks_dir / pylock.file_name(f"{name}-nearest")
                atomic.write_text(out, text)
                written.append(out)
            else:
                output.warn(f"{name} has no nearest set yet: run 'stackmeta resolve {name}' for its pylock")

    if args.json:
        output.json({"written": [str(p) for p in written], "left_out": left_out})
    else:
        for p in written:
            output.result(f"wrote {p}")
        for file_name, names in left_out.items():
            if names:
                output.warn(f"{file_name}: {len(names)} pins have no file on the index and are left out: "
                            + ", ".join(names))
    return 0

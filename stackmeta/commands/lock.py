"""stackmeta lock: write a record's lock forms (constraints, hashed requirements, PEP 751)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import NormalizedName
from packaging.version import Version

from stackmeta import __version__, atomic, record
from stackmeta.check.closure import SECTION as CHECK_SECTION
from stackmeta.check.closure import file_infos
from stackmeta.check.report import CheckReport, FileInfo, require_known
from stackmeta.commands import common
from stackmeta.console import Output
from stackmeta.errors import IndexAccessError, RecordError, StackmetaError
from stackmeta.index import IndexClient
from stackmeta.locks import constraints, pylock
from stackmeta.locks import forms as lockforms
from stackmeta.resolve.matrix import CELLS_SECTION, CellMatrix
from stackmeta.resolve.nearest import SECTION as NEAREST_SECTION
from stackmeta.resolve.nearest import NearestSet
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
            "pylock.<name>-nearest.toml (PEP 751, the nearest pip-consistent set; of every cell, "
            "with markers, when the record was resolved in cells)."
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


def _index_lookup(client: IndexClient, target: Target) -> lockforms.FileLookup:
    """Files of versions the check did not read, from the index (as the check lists them)."""

    def lookup(name: NormalizedName, version: Version) -> Sequence[FileInfo] | None:
        try:
            page = client.project(name)
        except StackmetaError:
            return None
        return None if page is None else file_infos(page, version, target)

    return lookup


def _file_forms(args: argparse.Namespace, output: Output, doc: dict[str, object], path: Path,
                release: record.Release) -> tuple[list[tuple[Path, str]], dict[str, list[str]]]:
    """The forms that need the index's files: hashed requirements and the PEP 751 locks
    (path and text, written by the caller once every form is made)."""
    locks_dir: Path = args.locks_dir
    name: str = args.release
    report = _report(doc, path)
    try:
        require_known(report.unknown_projects, len(report.from_pypi), report.index_url,
                      f"nothing was written: the check section of {path} was made against it; run "
                      "'stackmeta check' against the release's index")
    except IndexAccessError as exc:
        raise RecordError(str(exc)) from None
    target = Target(python=Version(report.python), platform=report.platform)
    checked = lockforms.report_lookup(report)
    faithful = lockforms.faithful_entries(release)
    created_by = f"stackmeta {__version__}"
    forms: list[tuple[Path, str]] = []
    left_out: dict[str, list[str]] = {}
    if args.format in ("requirements", "all"):
        out = record.lock_file(locks_dir, name, ".hashes.txt")
        forms.append((out, lockforms.hashes_text(
            release, f"{release.release}: the release's exact files, for pip --require-hashes",
            faithful, checked, file_name=out.name)))
    if args.format not in ("pylock", "all"):
        return forms, left_out
    text, missing = lockforms.pylock_text(release, target, faithful, checked,
                                          index_url=report.index_url, created_by=created_by)
    out = locks_dir / pylock.file_name(name)
    forms.append((out, text))
    left_out[out.name] = [f"{m.entry.name}=={m.entry.version}" for m in missing]
    matrix = _cells(doc, path, name)
    consistent = doc.get(NEAREST_SECTION)
    if matrix is not None:  # every cell, with markers: the pins of <name>.nearest.txt
        set_index = matrix.index_url
    elif isinstance(consistent, dict):
        nearest = NearestSet.from_json(consistent)
        set_index = nearest.index_url
    else:
        output.warn(f"{name} has no nearest set yet: run 'stackmeta resolve {name}' for its pylock")
        return forms, left_out
    index_url = args.index_url or set_index
    with contextlib.ExitStack() as stack:
        lookup = checked
        if not args.offline:  # versions the nearest set moved were not read by the check
            client = stack.enter_context(IndexClient(index_url, args.cache_dir))
            lookup = lockforms.chain(checked, _index_lookup(client, target))
        if matrix is not None:
            text, missing = lockforms.cells_pylock_text(release, matrix, lookup, created_by=created_by)
        else:
            text, missing = lockforms.pylock_text(release, target, lockforms.nearest_entries(nearest.pins),
                                                  lookup, index_url=set_index, created_by=created_by)
    if missing:
        pins = ", ".join(f"{m.entry.name}=={m.entry.version}" for m in missing)
        todo = ("run without --offline" if args.offline
                else f"check that {index_url} is reachable and serves them (--index-url)")
        raise RecordError(f"{name}: no files known for {pins} of the nearest set: nothing was written; "
                          f"{todo}, or 'stackmeta check' again")
    forms.append((locks_dir / pylock.file_name(f"{name}-nearest"), text))
    return forms, left_out


def _cells(doc: dict[str, object], path: Path, name: str) -> CellMatrix | None:
    """The record's cell matrix (None when it was resolved before cells)."""
    data = doc.get(CELLS_SECTION)
    if data is None:
        return None
    try:
        if not isinstance(data, dict):
            raise TypeError(f"a {type(data).__name__}, not an object")
        return CellMatrix.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"{path}: malformed {CELLS_SECTION!r} section ({exc!r}): run "
                          f"'stackmeta resolve {name}' again") from None


def run(args: argparse.Namespace, output: Output) -> int:
    if args.index_url:
        args.index_url = common.index_url(args.index_url)
    locks_dir: Path = args.locks_dir
    name: str = args.release
    path = record.record_path(locks_dir, name)
    doc, release = record.load(locks_dir, name)  # read once: the check section of a release is megabytes
    forms: list[tuple[Path, str]] = []
    left_out: dict[str, list[str]] = {}
    if args.format in ("constraints", "all"):
        forms.append((record.constraints_path(locks_dir, name),
                      constraints.constraints_text(release, lock_name=name)))
    if args.format == "requirements" and not args.hashes:
        forms.append((record.lock_file(locks_dir, name, ".requirements.txt"),
                      "\n".join(constraints.pin_lines(release)) + "\n"))
    if args.format in ("pylock", "all") or (args.format == "requirements" and args.hashes):
        more, left_out = _file_forms(args, output, doc, path, release)
        forms += more
    atomic.write_all(forms)  # every form made before any is written: a failure leaves the old ones
    written = [out for out, _ in forms]

    if args.json:
        output.json({"written": [str(p) for p in written], "left_out": left_out})
        return 0
    for p in written:
        output.result(f"wrote {p}")
    for file_name, names in left_out.items():
        if names:
            output.warn(f"{file_name}: {len(names)} pins have no file on the index and are left out: "
                        + ", ".join(names))
    return 0

"""The lock forms of one record, all from the same data so that they agree:

- the constraints file (``<name>.txt``, :mod:`stackmeta.locks.constraints`), for ``pip install -c``;
- the hashed requirements (``<name>.hashes.txt``), for exact reproduction the way CMS
  installs: ``pip install --no-deps --require-hashes -r``;
- PEP 751 ``pylock.<name>.toml`` (:mod:`stackmeta.locks.pylock`) for the faithful set and
  ``pylock.<name>-nearest.toml`` for the nearest consistent set: of every cell (Python x laptop
  platform) when the record has them, one entry per version with the marker of the cells that
  take it, exactly the lines of ``<name>.nearest.txt`` (:func:`cells_entries`).

Files and hashes come from the record's check section (what ``stackmeta check`` read on the
index); versions it did not read (a pin the nearest set moved) are looked up through an
optional index client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version

from stackmeta import cells
from stackmeta.check.report import CheckReport, FileInfo
from stackmeta.errors import RecordError
from stackmeta.locks import constraints, pylock
from stackmeta.record import Release
from stackmeta.resolve.matrix import CellMatrix
from stackmeta.target import Target

# (name, version) -> the files of that version on the index, or None when not known
FileLookup = Callable[[NormalizedName, Version], Sequence[FileInfo] | None]


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """One line of a lock: an exact version, maybe only for some arches or cells."""

    name: NormalizedName
    version: Version
    marker: Marker | None = None
    # the cells' targets whose installers take this line; empty: the one target the files
    # were listed for (their ``usable``)
    targets: tuple[Target, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Unhashable:
    entry: Entry
    reason: str


def faithful_entries(release: Release) -> list[Entry]:
    """Exactly the release's pins (what the constraints file lists)."""
    out = []
    for pkg in sorted(release.packages, key=lambda p: (p.name, p.arches)):
        if pkg.version is None:
            continue
        mark = constraints.marker(pkg, release.arches)
        out.append(Entry(name=pkg.name, version=pkg.version, marker=Marker(mark) if mark else None))
    return out


def nearest_entries(pins: Iterable[tuple[NormalizedName, Version]]) -> list[Entry]:
    return [Entry(name=n, version=v) for n, v in sorted(pins)]


def cells_entries(matrix: CellMatrix) -> list[Entry]:
    """The nearest sets of every cell: one entry per (name, version) with the marker of the cells
    that take it (:meth:`CellMatrix.requirement_lines`, the lines of ``<name>.nearest.txt``)."""
    taken = matrix.pin_cells()
    return [Entry(name=name, version=version, marker=None if mark is None else Marker(mark),
                  targets=tuple(c.target for c in taken[name][version]))
            for name, version, mark in matrix.requirement_lines()]


def report_lookup(report: CheckReport | None) -> FileLookup:
    """Files from a check report (its pins and the picks of unpinned dependencies)."""
    known: dict[tuple[NormalizedName, str], tuple[FileInfo, ...]] = {}
    if report is not None:
        for result in (*report.pins, *report.picks):
            if result.files:
                known[(result.name, result.version)] = result.files

    def lookup(name: NormalizedName, version: Version) -> Sequence[FileInfo] | None:
        return known.get((name, str(version)))

    return lookup


def chain(*lookups: FileLookup) -> FileLookup:
    def lookup(name: NormalizedName, version: Version) -> Sequence[FileInfo] | None:
        for one in lookups:
            found = one(name, version)
            if found:
                return found
        return None

    return lookup


def _fits(f: FileInfo, target: Target) -> bool:
    """pip could install *f* for *target* (as :func:`stackmeta.index.source.file_usable` judges
    a page's file): a wheel whose tags fit or an sdist, with a Requires-Python admitting it."""
    if f.requires_python is not None and not SpecifierSet(f.requires_python).contains(
            target.python_full, prereleases=True):
        return False
    return f.kind == "sdist" or (f.kind == "wheel" and target.wheel_rank(f.filename) is not None)


def _hashable(entry: Entry, files: Sequence[FileInfo] | None) -> list[FileInfo]:
    """The files an installer may take for the entry's targets: wheels usable in one of them
    and the sdist, with a sha256 and not yanked."""
    def usable(f: FileInfo) -> bool:
        if f.kind == "sdist":
            return True
        return any(_fits(f, t) for t in entry.targets) if entry.targets else f.usable

    return [f for f in files or () if f.sha256 and not f.yanked and usable(f)]


def split(entries: Sequence[Entry], lookup: FileLookup) -> tuple[list[tuple[Entry, list[FileInfo]]],
                                                                  list[Unhashable]]:
    ok: list[tuple[Entry, list[FileInfo]]] = []
    missing: list[Unhashable] = []
    for entry in entries:
        files = lookup(entry.name, entry.version)
        usable = _hashable(entry, files)
        if usable:
            ok.append((entry, usable))
        elif files and all(f.yanked for f in files):
            missing.append(Unhashable(entry=entry, reason="yanked on the index"))
        elif files:
            missing.append(Unhashable(entry=entry, reason="no file pip could install for the target"))
        else:
            missing.append(Unhashable(entry=entry, reason="not on the index (or not checked)"))
    return ok, missing


def hashes_text(release: Release, title: str, entries: Sequence[Entry], lookup: FileLookup,
                *, file_name: str) -> str:
    """A requirements file with ``--hash`` options, for ``pip install --no-deps --require-hashes``."""
    ok, missing = split(entries, lookup)
    lines = [
        f"# {title}",
        f"# arch{'es' if len(release.arches) > 1 else ''}: {', '.join(release.arches)}; "
        f"Python: {constraints.python_text(release)}; source: {release.source}",
        f"# {len(ok)} pins with the sha256 of every file pip may take for the target",
        f"# usage: pip install --no-deps --require-hashes -r {file_name}",
    ]
    if missing:
        lines.append(f"# {len(missing)} pins have no file on the index and are left out here "
                     "(install them the way the release builds them):")
        lines += [f"#   {m.entry.name}=={m.entry.version}: {m.reason}" for m in missing]
    for entry, files in ok:
        head = f"{entry.name}=={entry.version}"
        if entry.marker is not None:
            head += f" ; {entry.marker}"
        hashes = sorted({f.sha256 for f in files if f.sha256})
        lines.append(head + " \\")
        lines += [f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "")
                  for i, h in enumerate(hashes)]
    return "\n".join(lines) + "\n"


def pylock_text(release: Release, target: Target, entries: Sequence[Entry], lookup: FileLookup, *,
                index_url: str, created_by: str) -> tuple[str, list[Unhashable]]:
    """A PEP 751 lock of *entries* for *target*; entries without files are left out and returned."""
    major, minor = target.python_minor
    text, ok, missing = _pylock(entries, lookup, index_url=index_url, created_by=created_by,
                                requires_python=SpecifierSet(f"=={major}.{minor}.*"),
                                environments=[_target_marker(target, os_key="sys_platform")])
    header = [f"# {release.release} for {target}: {ok} packages"]
    if missing:
        header.append(f"# left out, no file on the index for {target}:")
        header += [f"#   {m.entry.name}=={m.entry.version}: {m.reason}" for m in missing]
    return "\n".join(header) + "\n" + text, missing


def cells_pylock_text(release: Release, matrix: CellMatrix, lookup: FileLookup, *,
                      created_by: str) -> tuple[str, list[Unhashable]]:
    """A PEP 751 lock of the nearest sets of every cell of *matrix*: the entries of
    :func:`cells_entries`, each with the files an installer in one of its cells may take;
    ``environments`` names each resolved cell and ``requires-python`` covers them, so that an
    installer elsewhere (a cell without a set, a platform outside every cell) refuses the lock.
    Entries without files are left out and returned."""
    resolved = [r.cell for r in matrix.resolved]
    if not resolved:
        raise RecordError(f"{matrix.release} has no cell with a consistent set: run 'stackmeta resolve "
                          f"{matrix.release}' again")
    python2 = any(c.python[0] == 2 for c in matrix.cells)
    text, ok, missing = _pylock(
        cells_entries(matrix), lookup, index_url=matrix.index_url, created_by=created_by,
        requires_python=cells.requires_python(resolved),
        environments=[_target_marker(c.target, os_key="platform_system" if python2 else "sys_platform")
                      for c in resolved])
    header = [f"# The nearest pip-consistent sets of {release.release} in {len(matrix.results)} cells "
              f"(Python x platform): {ok} entries; a marker names the cells that take that version",
              f"# the same pins as {release.release}'s .nearest.txt; the release's own are in "
              f"pylock.{release.release}.toml"]
    header += [f"# CELL {r.cell.name}: NO CONSISTENT SET: {r.failure}" for r in matrix.results
               if r.nearest is None]
    if missing:
        header.append("# left out, no file on the index:")
        header += [f"#   {m.entry.name}=={m.entry.version}: {m.reason}" for m in missing]
    return "\n".join(header) + "\n" + text, missing


def _target_marker(target: Target, *, os_key: str) -> Marker:
    """The marker of *target*'s Python minor, OS (by *os_key*: ``platform_system`` for Python 2
    cells, as their markers name it) and machine."""
    env = target.environment()
    return Marker(f'python_version == "{env["python_version"]}" and {os_key} == "{env[os_key]}" '
                  f'and platform_machine == "{env["platform_machine"]}"')


def _pylock(entries: Sequence[Entry], lookup: FileLookup, *, index_url: str, created_by: str,
            requires_python: SpecifierSet, environments: Sequence[Marker]
            ) -> tuple[str, int, list[Unhashable]]:
    """The TOML text of the lock, how many entries it has, and the entries left out."""
    ok, missing = split(entries, lookup)
    base = index_url.rstrip("/")
    packages = []
    for entry, files in ok:
        wheels = tuple(_locked(f) for f in files if f.kind == "wheel")
        sdists = [f for f in files if f.kind == "sdist"]
        packages.append(pylock.LockedPackage(
            name=entry.name, version=entry.version, marker=entry.marker,
            index=f"{base}/{entry.name}/",
            wheels=wheels, sdist=_locked(sdists[0]) if sdists else None,
        ))
    text = pylock.dumps(pylock.build(packages, created_by=created_by, requires_python=requires_python,
                                     environments=environments))
    return text, len(ok), missing


def _locked(f: FileInfo) -> pylock.LockedFile:
    if f.sha256 is None:  # filtered out by _hashable
        raise RecordError(f"{f.filename}: no sha256 recorded: run 'stackmeta check' again")
    return pylock.LockedFile(filename=f.filename, url=f.url, sha256=f.sha256, size=f.size)

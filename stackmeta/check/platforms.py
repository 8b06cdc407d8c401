"""The laptop report: which platforms can install a release's pins from wheels.

:func:`matrix` is pure: from the project pages a check already fetched (a page lists every
file of every version) it tells, for each pin and each platform of
:data:`~stackmeta.target.LAPTOP_PLATFORMS`, whether the pinned version has a wheel pip could
install for the Python in question, only an sdist (pip would build it), or nothing; then, per
platform, the share of pins installable from wheels and the pins that block it.

With ``nearest=True`` (``stackmeta check --platform all --python 3.12``) each cell without a
wheel also names the *nearest* version with one, by the resolver's rule
(:func:`stackmeta.index.source.nearest_order` over the versions pip could install for that Python
and platform: the release version, then distance 1 below, 1 above, 2 below, ...; the first
that has a usable wheel). :func:`moved_release` is the release with those moves made for one
platform, and :func:`check_moves` runs the check's own analysis (:func:`stackmeta.check.closure.analyse`)
over it, fetching through the index client only the metadata of the moved versions and of
dependencies not seen yet: the moved set is *consistent* when no requirement of it excludes
another of its pins, no Requires-Python excludes the Python and every unpinned dependency has
a version that fits. The metadata of a version is read once, from the file pip would read for
the first platform that needs it (Requires-Dist is the same in every wheel of a version in
practice; markers carry the platform differences and are evaluated per platform).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import Version

from stackmeta.check import closure
from stackmeta.check import report as check_report
from stackmeta.check.closure import Pages
from stackmeta.check.report import PinStatus
from stackmeta.errors import StackmetaError
from stackmeta.index.client import FileMetadata, IndexClient
from stackmeta.index.simple import ProjectFile, ProjectPage
from stackmeta.index.source import file_usable, installable_versions, metadata_file, nearest_order
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.record import Package, Release
from stackmeta.target import LAPTOP_PLATFORMS, Target


@dataclass(frozen=True, kw_only=True, slots=True)
class Cell:
    """One pin on one platform."""

    status: PinStatus  # wheel / sdist-only / no-usable-file / no-version / no-project / ...
    wheel: str | None = None  # the wheel pip would pick for the pinned version
    nearest: Version | None = None  # no wheel for the pin: the nearest version that has one
    nearest_wheel: str | None = None

    @property
    def label(self) -> str:
        """What a person reads in the matrix: "wheel", "sdist", "none", "not on index", ..."""
        return {PinStatus.WHEEL: "wheel", PinStatus.SDIST_ONLY: "sdist", PinStatus.NO_FILE: "none",
                PinStatus.NO_PROJECT: "not on index", PinStatus.NO_VERSION: "not on index",
                PinStatus.NOT_PEP440: "not PEP 440", PinStatus.MISSING: "missing"}[self.status]


@dataclass(frozen=True, kw_only=True, slots=True)
class Row:
    name: NormalizedName
    version: str  # as the release writes it
    cells: Mapping[str, Cell]  # platform -> cell

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True, kw_only=True, slots=True)
class MovedSet:
    """The pins moved to their nearest version with a wheel on one platform, checked."""

    moves: tuple[tuple[NormalizedName, str, str], ...]  # (name, release version, moved to)
    consistent: bool | None  # no problem at all; None: results missing (the index failed)
    problems: tuple[str, ...] = ()  # conflicts, Requires-Python, unsatisfiable: new with the moves
    release_problems: tuple[str, ...] = ()  # those the release has as pinned, still there

    @property
    def stays(self) -> bool | None:
        """The moves add no problem to those the release already has (None: results missing)."""
        return None if self.consistent is None and not self.problems else not self.problems


@dataclass(frozen=True, kw_only=True, slots=True)
class Summary:
    platform: str
    total: int
    wheels: int  # pins with a usable wheel
    sdist_only: tuple[str, ...]  # "name==version": pip would have to build them
    nothing: tuple[str, ...]  # nothing pip could install (not on the index, no usable file)
    no_wheel_anywhere: tuple[str, ...] = ()  # with nearest: no version at all has a wheel
    moved: MovedSet | None = None

    @property
    def share(self) -> float:
        return self.wheels / self.total if self.total else 1.0

    @property
    def percent(self) -> str:
        return f"{100 * self.share:.0f}%"

    @property
    def blockers(self) -> tuple[str, ...]:
        return (*self.sdist_only, *self.nothing)


@dataclass(frozen=True, kw_only=True, slots=True)
class PlatformMatrix:
    lock_name: str
    python: str  # 3.9.14
    platforms: tuple[str, ...]
    rows: tuple[Row, ...]
    summaries: tuple[Summary, ...]
    nearest: bool = False

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def summary(self, platform: str) -> Summary:
        for s in self.summaries:
            if s.platform == platform:
                return s
        raise KeyError(platform)

    def to_json(self) -> dict[str, Any]:
        def cell(c: Cell) -> dict[str, Any]:
            out: dict[str, Any] = {"status": c.status.value, "wheel": c.wheel}
            if self.nearest:
                out["nearest"] = None if c.nearest is None else str(c.nearest)
                out["nearest_wheel"] = c.nearest_wheel
            return out

        def summary(s: Summary) -> dict[str, Any]:
            out: dict[str, Any] = {
                "total": s.total, "wheels": s.wheels, "share": round(s.share, 4),
                "sdist_only": list(s.sdist_only), "nothing": list(s.nothing)}
            if self.nearest:
                out["no_wheel_anywhere"] = list(s.no_wheel_anywhere)
            if s.moved is not None:
                mv = s.moved
                out["moved"] = {"moves": [{"name": n, "from": a, "to": b} for n, a, b in mv.moves],
                                "consistent": mv.consistent, "stays": mv.stays, "problems": list(mv.problems),
                                "release_problems": list(mv.release_problems)}
            return out

        return {
            "lock_name": self.lock_name, "python": self.python, "platforms": list(self.platforms),
            "rows": [{"name": r.name, "version": r.version,
                      "cells": {p: cell(c) for p, c in r.cells.items()}} for r in self.rows],
            "summary": {s.platform: summary(s) for s in self.summaries},
        }


def laptop_target(python: Version, platform: str) -> Target:
    return Target(python=python, platform=platform)


def _best_wheel(files: Sequence[ProjectFile], target: Target) -> str | None:
    wheels = [f for f in files if f.kind == "wheel" and file_usable(f, target)]
    live = [f for f in wheels if not f.yanked] or wheels
    best = metadata_file(live, target) if live else None
    return best.filename if best is not None else None


def cell(page: ProjectPage | StackmetaError | None, version: Version | None, target: Target, *,
         nearest: bool = False) -> Cell:
    """The cell of a pin at *version* for *target*, from its project page (pure)."""
    if version is None:
        return Cell(status=PinStatus.NOT_PEP440)
    if isinstance(page, StackmetaError):
        return Cell(status=PinStatus.MISSING)
    if page is None:
        return Cell(status=PinStatus.NO_PROJECT)
    files = page.files_of(version)
    if not files:
        status, wheel = PinStatus.NO_VERSION, None
    else:
        wheel = _best_wheel(files, target)
        sdist = any(f.kind == "sdist" and file_usable(f, target) for f in files)
        status = PinStatus.WHEEL if wheel else PinStatus.SDIST_ONLY if sdist else PinStatus.NO_FILE
    if status is PinStatus.WHEEL or not nearest:
        return Cell(status=status, wheel=wheel)
    usable = installable_versions(page, target)
    for v in nearest_order(usable, version):
        if v == version:
            continue
        w = _best_wheel(usable[v], target)
        if w is not None:
            return Cell(status=status, nearest=v, nearest_wheel=w)
    return Cell(status=status)


def matrix(lock_name: str, pins: Sequence[Package], python: Version, pages: Pages, *,
           platforms: Sequence[str] = LAPTOP_PLATFORMS, nearest: bool = False) -> PlatformMatrix:
    """The matrix of *pins* (the release's shipped packages) for *python* on each platform,
    from the project pages a check fetched (pure; no request)."""
    targets = {p: laptop_target(python, p) for p in platforms}
    rows = tuple(
        Row(name=pkg.name, version=pkg.version_written if pkg.version is None else str(pkg.version),
            cells={p: cell(pages.get(pkg.name), pkg.version, t, nearest=nearest) for p, t in targets.items()})
        for pkg in sorted(pins, key=lambda p: p.name)
    )
    summaries = []
    for p in platforms:
        cells = [(r, r.cells[p]) for r in rows]
        summaries.append(Summary(
            platform=p, total=len(rows),
            wheels=sum(c.status is PinStatus.WHEEL for _, c in cells),
            sdist_only=tuple(r.spec for r, c in cells if c.status is PinStatus.SDIST_ONLY),
            nothing=tuple(r.spec for r, c in cells if not c.status.installable),
            no_wheel_anywhere=tuple(r.spec for r, c in cells
                                    if nearest and c.status is not PinStatus.WHEEL and c.nearest is None),
        ))
    return PlatformMatrix(lock_name=lock_name, python=laptop_target(python, platforms[0]).python_full,
                          platforms=tuple(platforms), rows=rows, summaries=tuple(summaries), nearest=nearest)


def moved_release(release: Release, pins: Sequence[Package], m: PlatformMatrix, platform: str, *,
                  move: bool = True) -> tuple[Release, tuple[tuple[NormalizedName, str, str], ...]]:
    """*release* reduced to *pins*, shipped on every platform, with (if *move*) each pin that
    has no wheel on *platform* moved to its nearest version with one; and the moves made (pure)."""
    moves = []
    packages = []
    for pkg in pins:
        c = m.row(pkg.name).cells[platform]
        if move and c.nearest is not None:
            moves.append((pkg.name, pkg.version_written if pkg.version is None else str(pkg.version),
                          str(c.nearest)))
            pkg = dataclasses.replace(pkg, version=c.nearest, version_written=str(c.nearest))
        packages.append(dataclasses.replace(pkg, arches=()))
    return dataclasses.replace(release, packages=tuple(packages)), tuple(moves)


def problems(report: check_report.CheckReport) -> dict[tuple[str, ...], str]:
    """What makes a checked set inconsistent, keyed so that the same problem of a release and
    of its moved set compare equal: conflicts, Requires-Python, unsatisfiable dependencies."""
    out: dict[tuple[str, ...], str] = {}
    for c in report.conflicts:
        out[("conflict", c.requirer, c.requirement, c.dependency)] = c.message
    for p in report.python_problems:
        out[("python", p.name, p.requires_python)] = p.message
    for u in report.unsatisfiable:
        out[("unsatisfiable", u.name, u.specifier)] = u.message
    return out


def check_moves(release: Release, pins: Sequence[Package], m: PlatformMatrix, client: IndexClient,
                pages: dict[NormalizedName, ProjectPage | StackmetaError | None],
                metas: dict[tuple[NormalizedName, Version], FileMetadata | StackmetaError | None],
                progress: Progress = NO_PROGRESS) -> PlatformMatrix:
    """*m* with each platform's moved set checked by the check's analysis, and compared with
    the release as pinned on that platform; *pages* and *metas* (what the check fetched) are
    extended with what the moved sets need."""
    python = Version(m.python)
    summaries = []
    for s in m.summaries:
        target = laptop_target(python, s.platform)
        before_rel, _ = moved_release(release, pins, m, s.platform, move=False)
        rel, moves = moved_release(release, pins, m, s.platform)
        closure.fetch(before_rel, target, client, progress, pages=pages, metas=metas)
        closure.fetch(rel, target, client, progress, pages=pages, metas=metas)
        before = problems(closure.analyse(before_rel, target, client.index_url, pages, metas))
        report = closure.analyse(rel, target, client.index_url, pages, metas)
        after = problems(report)
        consistent = False if after else None if report.incomplete else True
        summaries.append(dataclasses.replace(s, moved=MovedSet(
            moves=moves, consistent=consistent,
            problems=tuple(msg for key, msg in after.items() if key not in before),
            release_problems=tuple(msg for key, msg in after.items() if key in before))))
    return dataclasses.replace(m, summaries=tuple(summaries))
